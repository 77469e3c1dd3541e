"""Fine-tuning jobs: refuse bad requests at once (400 with ``param``), queue good ones, report on them.

The API only writes rows; the worker (:mod:`selftune.jobs.worker`) does the training and moves a
job through its lifecycle (:mod:`selftune.jobs.lifecycle`). Cancel and pause are requests the
worker carries out within seconds.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import Text, cast, func, or_, select

from selftune.api.errors import bad_request, not_found
from selftune.api.fine_tuning.protocol import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    Hyperparameters,
    JobCreateRequest,
)
from selftune.api.metadata import check_metadata
from selftune.api.models.service import find_fine_tuned
from selftune.api.owned import owned
from selftune.api.pagination import page
from selftune.jobs.events import add_event
from selftune.jobs.lifecycle import (
    ACTIVE,
    INITIAL,
    PAUSES_AT_ONCE,
    Control,
    JobStatus,
    file_problem,
    move,
    resumed_status,
)
from selftune.models.adapter import is_adapter_folder
from selftune.models.catalog import base_models
from selftune.models.ids import SUFFIX_PATTERN, base_model_of, parse_fine_tuned_id
from selftune.store.db import Database
from selftune.store.tables import CheckpointRow, EventRow, FileRow, JobRow, new_id, now
from selftune.train.methods import METHODS, SHARED_HYPERPARAMETERS, Method, hyperparameter_problem, one_of

MAX_RUN_EVENTS = 1_000_000  # run_events answers a whole run (the dashboard's curves), not a page


class RunEvent(NamedTuple):
    """An event as the curves need it (:meth:`JobService.run_events`)."""

    id: str
    type: str
    data: dict


class JobService:
    def __init__(self, *, db: Database):
        self.db = db

    # ---- create ------------------------------------------------------------------------------
    def create(self, org: str, request: JobCreateRequest) -> FineTuningJob:
        method = self._method(request)
        hyperparameters = self._hyperparameters(request, method)
        self._check_model(org, request.model)
        self._check_suffix(request.suffix)
        metadata = check_metadata(request.metadata)
        if request.integrations:
            raise bad_request("Integrations (wandb) are not supported yet by selftune.", param="integrations")
        with self.db.transaction() as session:
            self._check_file(session, org, request.training_file, "training_file", method)
            if request.validation_file:
                self._check_file(session, org, request.validation_file, "validation_file", method)
            job = JobRow(id=new_id("ftjob-"), org=org, model=request.model, training_file=request.training_file,
                         validation_file=request.validation_file, method=method, hyperparameters=hyperparameters,
                         suffix=request.suffix or None, seed=request.seed if request.seed is not None
                         else secrets.randbelow(2**31), metadata_=metadata, status=INITIAL,
                         result_files=[], created_at=now())
            session.add(job)
            session.flush()
            add_event(session, job, f"Created fine-tuning job: {job.id}")
            add_event(session, job, f"Validating training file: {job.training_file}"
                      + (f" and validation file: {job.validation_file}" if job.validation_file else ""))
            return to_job(job)

    @staticmethod
    def _method(request: JobCreateRequest) -> str:
        method = request.method.type if request.method else Method.SUPERVISED
        if method == "reinforcement":
            raise bad_request("Reinforcement fine-tuning is not supported yet by selftune.", param="method.type")
        if method not in METHODS:
            raise bad_request(f"Invalid method type {method!r}: expected {one_of(METHODS)}.", param="method.type")
        return Method(method)

    @staticmethod
    def _hyperparameters(request: JobCreateRequest, method: str) -> dict:
        """Merge the top-level (older) and the method's hyperparameters, then check each."""
        given: dict = {}
        sources = [("hyperparameters", request.hyperparameters)]
        settings = getattr(request.method, method, None) if request.method else None
        if settings is not None:
            sources.append((f"method.{method}.hyperparameters", settings.hyperparameters))
        for prefix, hp in sources:
            for name, value in (hp or Hyperparameters()).model_dump(exclude_none=True).items():
                param = f"{prefix}.{name}"
                if name not in METHODS[method].hyperparameters:
                    raise bad_request(f"{name} is not a hyperparameter of the {method} method.", param=param)
                problem = hyperparameter_problem(name, value)
                if problem:
                    raise bad_request(f"Invalid {param}: {problem}.", param=param)
                if name in given and given[name] != value:
                    raise bad_request(f"{name} is given twice with different values.", param=param)
                given[name] = value
        return {name: given.get(name, "auto") for name in METHODS[method].hyperparameters}

    def _check_model(self, org: str, model: str) -> None:
        """A base model this server offers, or a fine-tuned model or checkpoint of the caller's organisation
        (training continues from its adapter, on its base; another organisation's is 404, as if absent)."""
        if parse_fine_tuned_id(model):
            with self.db.transaction() as session:
                parent = find_fine_tuned(session, org, model)
                weights = Path(parent.path)
            if not is_adapter_folder(weights):
                raise not_found("model", model, param="model")  # a checkpoint no longer kept, a deleted model
        available = base_models()
        base = base_model_of(model)
        if base not in available:
            raise bad_request(f"Model {base!r} is not available for fine-tuning. Available: "
                              f"{', '.join(sorted(available)) or 'none'}.", param="model", code="model_not_available")

    @staticmethod
    def _check_suffix(suffix: str | None) -> None:
        if suffix and not SUFFIX_PATTERN.match(suffix):
            raise bad_request("suffix must be at most 64 characters of letters, digits, '-', '_' or '.'.",
                              param="suffix")

    @staticmethod
    def _check_file(session, org: str, file_id: str, param: str, method: str) -> None:
        row = session.scalar(select(FileRow).where(FileRow.id == file_id, FileRow.org == org))
        problem = file_problem(row, file_id, param, method)
        if problem is not None:
            raise bad_request(problem.message, param=param, code=problem.code)

    # ---- read --------------------------------------------------------------------------------
    def retrieve(self, org: str, job_id: str) -> FineTuningJob:
        with self.db.transaction() as session:
            return to_job(self._row(session, org, job_id))

    def list(self, org: str, after: str | None, limit: int, metadata: dict[str, str],
             statuses: Collection[str] = ()) -> tuple[list, bool]:
        with self.db.transaction() as session:
            query = select(JobRow).where(JobRow.org == org)
            for key, value in metadata.items():
                query = query.where(JobRow.metadata_[key].as_string() == value)
            if statuses:
                query = query.where(JobRow.status.in_(list(statuses)))
            rows, more = page(session, query, JobRow, after, limit, kind="fine-tuning job")
            return [to_job(r) for r in rows], more

    def events(self, org: str, job_id: str, after: str | None, limit: int) -> tuple[list, bool]:
        with self.db.transaction() as session:
            self._row(session, org, job_id)
            query = select(EventRow).where(EventRow.job_id == job_id)
            rows, more = page(session, query, EventRow, after, limit, kind="event")
            return [to_event(r) for r in rows], more

    def run_events(self, org: str, job_id: str, after: str | None = None) -> list[RunEvent]:
        """Every event that draws the run's curves, oldest first, after the event ``after``: the metrics
        events (steps and validations) and the start event (its ``total_steps`` and hyperparameters).
        Plain (id, type, data) rows, not ORM objects and API models: a run of 10,000 steps is read in a
        fifth of the time (bench/dashboard.py)."""
        with self.db.transaction() as session:
            self._row(session, org, job_id)
            # data as its JSON text, decoded below in one json.loads: 10,000 small decodes cost 5x more
            query = select(EventRow.id, EventRow.type, cast(EventRow.data, Text)).where(EventRow.job_id == job_id, or_(
                EventRow.type == "metrics", EventRow.data["total_steps"].as_integer().is_not(None)))
            if after:
                cursor = session.scalar(select(EventRow.pk).where(EventRow.job_id == job_id, EventRow.id == after))
                if cursor is None:
                    raise not_found("event", after, param="after")
                query = query.where(EventRow.pk > cursor)
            rows = session.execute(query.order_by(EventRow.pk.asc()).limit(MAX_RUN_EVENTS)).all()
            datas = json.loads("[" + ",".join(data or "null" for _, _, data in rows) + "]")
            return [RunEvent(id, type, data or {}) for (id, type, _), data in zip(rows, datas, strict=True)]

    def progress(self, org: str, job_ids: Collection[str]) -> dict[str, tuple[int, int]]:
        """``job id -> (last step, total steps)`` of the jobs that have started training."""
        with self.db.transaction() as session:
            has_total = EventRow.data["total_steps"].as_integer().is_not(None)
            latest = (select(func.max(EventRow.pk)).where(EventRow.job_id.in_(list(job_ids)), EventRow.org == org,
                                                          has_total).group_by(EventRow.job_id))
            rows = session.scalars(select(EventRow).where(EventRow.pk.in_(latest)))
            return {r.job_id: (int(r.data.get("step", 0)), int(r.data["total_steps"])) for r in rows}

    def checkpoints(self, org: str, job_id: str, after: str | None, limit: int) -> tuple[list, bool]:
        with self.db.transaction() as session:
            self._row(session, org, job_id)
            query = select(CheckpointRow).where(CheckpointRow.job_id == job_id)
            rows, more = page(session, query, CheckpointRow, after, limit, kind="checkpoint")
            return [to_checkpoint(r) for r in rows], more

    # ---- control -----------------------------------------------------------------------------
    def cancel(self, org: str, job_id: str) -> FineTuningJob:
        """Cancelled at once in the database; a worker training it sees that and stops its child."""
        with self.db.transaction() as session:
            job = self._row(session, org, job_id, lock=True)
            if job.status not in ACTIVE:
                raise bad_request(f"Job {job_id} has already {job.status}; only a job that has not finished can "
                                  "be cancelled.", param="fine_tuning_job_id", code="job_not_active")
            move(job, JobStatus.CANCELLED)
            job.control = Control.CANCEL
            add_event(session, job, "Fine-tuning job cancelled")
            return to_job(job)

    def pause(self, org: str, job_id: str) -> FineTuningJob:
        """A queued job pauses at once; a running one at its next step, after saving a checkpoint."""
        with self.db.transaction() as session:
            job = self._row(session, org, job_id, lock=True)
            if job.status in PAUSES_AT_ONCE:
                move(job, JobStatus.PAUSED)
                add_event(session, job, "Fine-tuning job paused")
            elif job.status == JobStatus.RUNNING:
                job.control = Control.PAUSE
                add_event(session, job, "Pausing fine-tuning job at the next step (a checkpoint is saved)")
            elif job.status != JobStatus.PAUSED:
                raise bad_request(f"Job {job_id} is {job.status}; only a queued or running job can be paused.",
                                  param="fine_tuning_job_id", code="job_not_active")
            return to_job(job)

    def resume(self, org: str, job_id: str) -> FineTuningJob:
        with self.db.transaction() as session:
            job = self._row(session, org, job_id, lock=True)
            if job.status != JobStatus.PAUSED:
                raise bad_request(f"Job {job_id} is {job.status}; only a paused job can be resumed.",
                                  param="fine_tuning_job_id", code="job_not_paused")
            move(job, resumed_status(job))
            job.control = None
            add_event(session, job, "Fine-tuning job resumed")
            return to_job(job)

    @staticmethod
    def _row(session, org: str, job_id: str, lock: bool = False) -> JobRow:
        return owned(session, JobRow, org, job_id, "fine-tuning job", "fine_tuning_job_id", lock=lock)


def to_job(job: JobRow) -> FineTuningJob:
    hp = dict(job.resolved_hyperparameters or job.hyperparameters)
    method_hp = {k: v for k, v in hp.items() if k in METHODS[job.method].hyperparameters}
    top_level = {k: method_hp[k] for k in SHARED_HYPERPARAMETERS}
    error = job.error if job.status == JobStatus.FAILED else None
    return FineTuningJob(
        id=job.id, created_at=job.created_at, error=error, fine_tuned_model=job.fine_tuned_model,
        finished_at=job.finished_at, hyperparameters=top_level, model=job.model, organization_id=job.org,
        result_files=list(job.result_files or []), seed=job.seed, status=job.status,
        trained_tokens=job.trained_tokens, training_file=job.training_file, validation_file=job.validation_file,
        estimated_finish=job.estimated_finish if job.status == JobStatus.RUNNING else None, metadata=job.metadata_,
        method={"type": job.method, job.method: {"hyperparameters": method_hp}}, user_provided_suffix=job.suffix,
    )


def to_event(row: EventRow) -> FineTuningJobEvent:
    return FineTuningJobEvent(id=row.id, created_at=row.created_at, level=row.level, message=row.message,
                              data=row.data or {}, type=row.type)


def to_checkpoint(row: CheckpointRow) -> FineTuningJobCheckpoint:
    return FineTuningJobCheckpoint(id=row.id, created_at=row.created_at, fine_tuned_model_checkpoint=row.model,
                                   fine_tuning_job_id=row.job_id, metrics=row.metrics, step_number=row.step_number)


