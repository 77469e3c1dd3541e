"""Recreate the plan's hosted jobs on a selftune server: same method, hyperparameters, suffix, seed and
metadata, trained on a local copy of the original data or on the file ``capture`` built.

Everything goes through the Fine-tuning API with the ``openai`` SDK, as the team's own scripts
would. The base model is the hosted name: the server maps it to a local base
(``SELFTUNE_MODEL_ALIASES``), unless ``--model`` names one. Each created job is written into the plan
at once, so an interrupted replay follows its jobs on the next run instead of creating them twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import openai

from selftune.errors import SelftuneError
from selftune.jobs.lifecycle import TERMINAL, JobStatus
from selftune.migrate.plan import FileRecord, JobRecord, Plan, ReplayRecord, save_plan
from selftune.store.atomic import atomic_write
from selftune.train.methods import METHODS, method_spec

METADATA_LIMIT = 16  # keys per object, as hosted
MIGRATED_FROM = "migrated_from"  # metadata key that links a replayed job to its hosted original


@dataclass
class ReplayOptions:
    plan_path: Path
    jobs: list[str] | None = None  # None: every job the plan marks replay: true
    model: str | None = None  # a local base for every job instead of the hosted name
    follow: bool = True
    poll_seconds: float = 2.0
    timeout: float | None = None  # seconds to follow each job; None: until it ends


def replay(plan: Plan, target: openai.OpenAI, source: openai.OpenAI | None, options: ReplayOptions,
           say: Callable[[str], None] = print) -> list[JobRecord]:
    """Create (or resume following) the chosen jobs; returns them with their ``replayed`` record."""
    chosen = [plan.job(j) for j in options.jobs] if options.jobs else [j for j in plan.jobs if j.replay]
    if not chosen:
        raise SelftuneError("no job to replay: the plan marks none with \"replay\": true (or name them with --job)")
    uploads: dict[Path, str] = {}
    for job in chosen:
        if job.replayed and job.replayed.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            say(f"{job.id}: already replayed as {job.replayed.job_id} ({job.replayed.status})")
        else:
            job.replayed = _create(plan, job, target, source, options, uploads, say)
            save_plan(plan, options.plan_path)
        if options.follow:
            job.replayed = _follow(target, job.replayed, options, say)
            save_plan(plan, options.plan_path)
    return chosen


def _create(plan: Plan, job: JobRecord, target: openai.OpenAI, source: openai.OpenAI | None,
            options: ReplayOptions, uploads: dict[Path, str], say) -> ReplayRecord:
    if job.method not in METHODS:
        raise SelftuneError(f"{job.id}: method {job.method!r} can't be replayed: selftune trains "
                            f"{', '.join(METHODS)}")
    training = _data_for(plan, job, job.training_file, source, options.plan_path, training=True)
    validation = (_data_for(plan, job, job.validation_file, source, options.plan_path, training=False)
                  if job.validation_file else None)
    if job.validation_file and validation is None:
        say(f"{job.id}: no copy of validation file {job.validation_file}: replaying without validation")
    training_id = _upload(target, training, uploads)
    validation_id = _upload(target, validation, uploads) if validation else None
    hyperparameters = {k: v for k, v in job.hyperparameters.items() if k in method_spec(job.method).hyperparameters}
    metadata = dict(job.metadata)
    if len(metadata) < METADATA_LIMIT:
        metadata[MIGRATED_FROM] = job.id
    created = target.fine_tuning.jobs.create(
        model=options.model or job.model, training_file=training_id, validation_file=validation_id or openai.omit,
        suffix=job.suffix or openai.omit, seed=job.seed if job.seed is not None else openai.omit,
        metadata=metadata or openai.omit,
        method={"type": job.method, job.method: {"hyperparameters": hyperparameters}})
    say(f"{job.id}: created {created.id} on {created.model} from {training}")
    return ReplayRecord(job_id=created.id, status=created.status, fine_tuned_model=created.fine_tuned_model,
                        training_file=str(training))


def _data_for(plan: Plan, job: JobRecord, file_id: str, source: openai.OpenAI | None, plan_path: Path,
              training: bool) -> Path | None:
    """The data to train on for ``file_id``: the local copy, the captured file, or a download."""
    record = plan.files.get(file_id) or FileRecord(id=file_id, on_service=False)
    if record.local_copy and Path(record.local_copy).is_file():
        return Path(record.local_copy)
    if training and job.captured_file and Path(job.captured_file).is_file():
        return Path(job.captured_file)
    if record.downloadable and source is not None:
        folder = Path(plan_path).with_suffix(".data")
        path = folder / f"{file_id}-{Path(record.filename or 'data.jsonl').name}"
        if not path.is_file():
            with atomic_write(path, "wb") as f:
                f.write(source.files.content(file_id).read())
        return path
    if not training:
        return None
    why = "deleted on the service" if not record.on_service else "not downloadable from the service"
    raise SelftuneError(
        f"{job.id}: training file {file_id} ({record.filename or 'name unknown'}) is {why} and has no local copy: "
        f"run `selftune migrate inventory --data DIR` with a folder that holds it, or build one from the model's "
        f"behaviour with `selftune migrate capture --model {job.fine_tuned_model or 'MODEL'} --plan {plan_path}`")


def _upload(client: openai.OpenAI, path: Path, uploads: dict[Path, str]) -> str:
    if path not in uploads:
        with open(path, "rb") as f:
            created = client.files.create(file=f, purpose="fine-tune")
        uploads[path] = client.files.wait_for_processing(created.id, poll_interval=0.5).id
    return uploads[path]


def _follow(client: openai.OpenAI, record: ReplayRecord, options: ReplayOptions, say) -> ReplayRecord:
    """Print the job's events as they come until it ends (or the timeout passes)."""
    seen: set[str] = set()
    deadline = time.monotonic() + options.timeout if options.timeout else None
    while True:
        job = client.fine_tuning.jobs.retrieve(record.job_id)
        for event in reversed(client.fine_tuning.jobs.list_events(record.job_id, limit=100).data):
            if event.id not in seen:
                seen.add(event.id)
                if event.type != "metrics":
                    say(f"  {record.job_id}: {event.message}")
        if job.status in TERMINAL or (deadline and time.monotonic() > deadline):
            return record.model_copy(update={"status": job.status, "fine_tuned_model": job.fine_tuned_model})
        time.sleep(options.poll_seconds)
