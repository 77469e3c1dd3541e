"""The migration plan: what an organisation has on the hosted service, and what has been done about it.

``selftune migrate inventory`` writes it; ``capture`` records the training file it built for a model;
``replay`` reads which jobs to recreate and records the jobs it created, so a second run follows them
instead of creating them again. It is a JSON file a person may read and edit (``replay: false`` skips
a job), written atomically on every change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from selftune.errors import SelftuneError
from selftune.store.atomic import atomic_write

PLAN_VERSION = 1


class FileRecord(BaseModel):
    """A file a hosted job used, as the service describes it and as found on this machine."""

    id: str
    filename: str | None = Field(None, description="Name it was uploaded under; None when the service lost it.")
    bytes: int | None = None
    purpose: str | None = None
    on_service: bool = Field(description="The service still has it (a deleted file is gone for good).")
    downloadable: bool = Field(False, description="The service lets its content be downloaded "
                                                  "(the hosted service refuses for fine-tune uploads).")
    local_copy: str | None = Field(None, description="A file of the same name and size under --data.")


class CheckpointRecord(BaseModel):
    model: str = Field(description="The checkpoint's model id (ft:...:ckpt-step-N).")
    step: int
    metrics: dict[str, float | None] = Field(default_factory=dict)


class StoredCompletionsRecord(BaseModel):
    """The model's production traffic kept with ``store: true``: what ``capture`` can learn from."""

    count: int
    first_created: int | None = None
    last_created: int | None = None
    metadata_keys: list[str] = Field(default_factory=list)


class ReplayRecord(BaseModel):
    """The job ``replay`` created here for a hosted job."""

    job_id: str
    status: str
    fine_tuned_model: str | None = None
    training_file: str = Field(description="Where its training data came from (a path).")


class JobRecord(BaseModel):
    id: str
    status: str
    model: str = Field(description="The hosted base model (the name replay asks selftune for).")
    method: str = "supervised"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: int
    finished_at: int | None = None
    trained_tokens: int | None = None
    fine_tuned_model: str | None = None
    training_file: str
    validation_file: str | None = None
    final_metrics: dict[str, float | None] = Field(default_factory=dict,
                                                   description="The last checkpoint's metrics.")
    checkpoints: list[CheckpointRecord] = Field(default_factory=list)
    stored_completions: StoredCompletionsRecord | None = None
    replay: bool = Field(description="Whether `migrate replay` recreates this job (edit to choose).")
    captured_file: str | None = Field(None, description="Training file `migrate capture` built from this "
                                                        "job's model; replay uses it when no copy of the "
                                                        "original data is at hand.")
    replayed: ReplayRecord | None = None


class Plan(BaseModel):
    version: int = PLAN_VERSION
    source_base_url: str
    created_at: int
    data_dir: str | None = None
    jobs: list[JobRecord] = Field(default_factory=list)
    files: dict[str, FileRecord] = Field(default_factory=dict)

    def job(self, job_id: str) -> JobRecord:
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise SelftuneError(f"the plan has no job {job_id!r}; its jobs: {', '.join(j.id for j in self.jobs) or 'none'}")

    def jobs_of_model(self, model: str) -> list[JobRecord]:
        """The job that made ``model`` (a fine-tuned model or one of its checkpoints)."""
        return [j for j in self.jobs
                if j.fine_tuned_model == model or any(c.model == model for c in j.checkpoints)]


def load_plan(path: Path) -> Plan:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SelftuneError(f"{path}: no such plan file (write one with `selftune migrate inventory`)") from None
    except json.JSONDecodeError as exc:
        raise SelftuneError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    try:
        return Plan.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SelftuneError(f"{path}: {where}: {first['msg']}") from None


def save_plan(plan: Plan, path: Path) -> None:
    with atomic_write(Path(path)) as f:
        f.write(plan.model_dump_json(indent=1) + "\n")
