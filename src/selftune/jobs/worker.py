"""The worker loop: promote validated jobs, claim queued ones, supervise training children.

Several workers (threads in ``selftune serve``, or ``selftune worker`` processes on several
machines) share one queue. A claim is one transaction: ``SELECT ... FOR UPDATE SKIP LOCKED`` on
PostgreSQL, and on every database a conditional UPDATE that only one worker can win. A running
job carries its worker's heartbeat; when the heartbeat goes stale (the worker crashed or was
killed) another worker takes the job over and the child resumes from the last checkpoint.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from sqlalchemy import or_, select, update

from selftune.jobs.events import add_event
from selftune.jobs.lifecycle import Control, JobStatus, can_move, file_problem, move
from selftune.jobs.relay import planned_model_id, relay
from selftune.jobs.workspace import (
    EXIT_BAD_INPUT,
    EXIT_DISK_FULL,
    EXIT_DONE,
    EXIT_STOPPED,
    Workspace,
    disk_full_message,
)
from selftune.models.adapter import ADAPTER_FILES, is_adapter_folder
from selftune.models.catalog import base_models
from selftune.models.ids import base_model_of, parse_fine_tuned_id
from selftune.store.atomic import DiskFull, atomic_directory
from selftune.store.blobs import BlobStore
from selftune.store.db import Database
from selftune.store.tables import CheckpointRow, FileRow, JobRow, ModelRow, new_id, now
from selftune.train.config import TrainConfig, config_problems
from selftune.train.events import RunStatus
from selftune.train.methods import method_spec

if TYPE_CHECKING:
    from selftune.config import Settings

log = logging.getLogger(__name__)
TICK_SECONDS = 0.5
STOP_GRACE_SECONDS = 60
EXPIRY_SWEEP_SECONDS = 60


@dataclass
class Running:
    job_id: str
    workspace: Workspace
    process: subprocess.Popen


class Worker:
    def __init__(self, *, db: Database, blobs: BlobStore, jobs_dir, concurrent_jobs: int = 1,
                 lease_seconds: float = 30.0, metrics_every: int = 10):
        self.db, self.blobs, self.jobs_dir = db, blobs, jobs_dir
        self.concurrent_jobs, self.lease_seconds, self.metrics_every = concurrent_jobs, lease_seconds, metrics_every
        self.host = socket.gethostname()
        self.id = f"{self.host}/{os.getpid()}/{new_id('')[:6]}"
        self.running: dict[str, Running] = {}
        self._stop = threading.Event()
        self._last_expiry_sweep = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, *, db: Database | None = None, blobs: BlobStore | None = None) -> Worker:
        """The worker ``settings`` describe; ``db`` and ``blobs`` when the caller already has them open."""
        return cls(db=db or Database(settings.database), blobs=blobs or BlobStore(settings.blobs_dir),
                   jobs_dir=settings.jobs_dir, concurrent_jobs=settings.concurrent_jobs,
                   lease_seconds=settings.job_lease_seconds, metrics_every=settings.metrics_every)

    # ---- loop --------------------------------------------------------------------------------
    def run_forever(self) -> None:
        log.info("worker %s started (%d concurrent job(s))", self.id, self.concurrent_jobs)
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - one bad tick (a DB hiccup) must not end the worker
                log.exception("worker tick failed")
            self._stop.wait(TICK_SECONDS)
        self._shutdown_children()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="selftune-worker", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> None:
        if time.time() - self._last_expiry_sweep > EXPIRY_SWEEP_SECONDS:
            self._delete_expired_files()
        self._promote_validated()
        self._supervise()
        while len(self.running) < self.concurrent_jobs and not self._stop.is_set():
            job_id = self._claim()
            if job_id is None:
                break
            self._start(job_id)

    def _delete_expired_files(self) -> None:
        """Uploads created with ``expires_after`` go once their time is up (rows first, then bytes)."""
        self._last_expiry_sweep = time.time()
        with self.db.transaction() as session:
            expired = list(session.scalars(select(FileRow).where(FileRow.expires_at < now()).limit(1000)))
            for row in expired:
                session.delete(row)
        for row in expired:
            self.blobs.delete(row.id)
        if expired:
            log.info("deleted %d expired file(s)", len(expired))

    # ---- validating_files -> queued ------------------------------------------------------------
    def _promote_validated(self) -> None:
        with self.db.transaction() as session:
            query = select(JobRow).where(JobRow.status == JobStatus.VALIDATING_FILES).order_by(JobRow.pk).limit(20)
            for job in session.scalars(query.with_for_update(skip_locked=True)):
                files = [(p, job_file) for p, job_file in (("training_file", job.training_file),
                                                             ("validation_file", job.validation_file)) if job_file]
                rows = {f: session.scalar(select(FileRow).where(FileRow.id == f)) for _, f in files}
                if any(r is not None and r.status == "uploaded" for r in rows.values()):
                    continue  # still being checked
                problems = [(param, file_problem(rows[f], f, param, job.method)) for param, f in files]
                param, problem = next(((p, why) for p, why in problems if why), (None, None))
                if problem:
                    self._fail(session, job, problem.code, problem.message, param)
                    continue
                move(job, JobStatus.QUEUED)
                add_event(session, job, "Files validated, moving job to queued state")

    # ---- claim ---------------------------------------------------------------------------------
    def _claim(self) -> str | None:
        """Take the oldest queued job, else a running job whose worker is gone; None when there is none."""
        stale = time.time() - self.lease_seconds
        candidates = (
            select(JobRow).where(JobRow.status == JobStatus.QUEUED),
            select(JobRow).where(JobRow.status == JobStatus.RUNNING, JobRow.id.not_in(list(self.running) or [""]),
                                 or_(JobRow.heartbeat_at < stale, JobRow.worker.like(f"{self.host}/%"))),
        )
        with self.db.transaction() as session:
            for query in candidates:
                query = query.order_by(JobRow.pk).limit(10).with_for_update(skip_locked=True)
                for job in session.scalars(query):
                    if job.status == JobStatus.RUNNING and not self._abandoned(job, stale):
                        continue
                    if self._take(session, job):
                        return job.id
        return None

    def _take(self, session, job: JobRow) -> bool:
        """The conditional UPDATE only one worker can win (SQLite has no row locks to rely on).

        ``control`` is kept: a pause asked for just before the previous worker died still happens.
        """
        if not can_move(job.status, JobStatus.RUNNING):
            return False
        previous = JobRow.worker.is_(None) if job.worker is None else JobRow.worker == job.worker
        claimed = session.execute(
            update(JobRow).where(JobRow.pk == job.pk, JobRow.status == job.status, previous)
            .values(status=JobStatus.RUNNING, worker=self.id, heartbeat_at=time.time(), attempts=job.attempts + 1)
            .execution_options(synchronize_session=False)).rowcount
        if claimed == 1 and job.worker is not None:
            add_event(session, job, "The worker running this job stopped; resuming from the last checkpoint")
        return claimed == 1

    def _abandoned(self, job: JobRow, stale: float) -> bool:
        """A running job nobody is running: its heartbeat is stale, or its worker process on this host is dead."""
        if job.heartbeat_at is not None and job.heartbeat_at < stale:
            return True
        host, _, rest = (job.worker or "").partition("/")
        pid = rest.split("/", 1)[0]
        if host != self.host or not pid.isdigit() or job.worker == self.id:
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    # ---- start a child -------------------------------------------------------------------------
    def _start(self, job_id: str) -> None:
        workspace = Workspace(self.jobs_dir / job_id)
        with self.db.transaction() as session:
            job = session.scalar(select(JobRow).where(JobRow.id == job_id))
            if workspace.training_complete():  # trained before a crash, never recorded: finish it now
                self._finish(session, job, workspace)
                return
            try:
                config = self._train_config(session, job, workspace)
            except _JobProblem as problem:
                self._fail(session, job, problem.code, problem.message, problem.param)
                return
        workspace.write_config(config)
        workspace.prepare_start()
        with open(workspace.log, "ab") as log_file:
            # a session of its own: Ctrl-C in the server's terminal (or systemd's stop signal to the group)
            # reaches the worker, which stops the child at a checkpoint, not the child directly
            process = subprocess.Popen([sys.executable, "-m", "selftune.jobs.child", str(workspace.folder)],
                                       stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self.running[job_id] = Running(job_id, workspace, process)
        log.info("job %s: training in child process %d", job_id, process.pid)

    def _train_config(self, session, job: JobRow, workspace: Workspace) -> TrainConfig:
        """The job as a TrainConfig, checked here: a setting the trainer would refuse fails the job before
        any child starts."""
        model = base_models().get(base_model_of(job.model))
        if model is None:
            raise _JobProblem("model_not_available", f"Model {base_model_of(job.model)!r} is no longer offered by "
                                                     "this server.", "model")
        init_adapter = self._parent_adapter(session, job, workspace) if parse_fine_tuned_id(job.model) else None
        data = {}
        for param, file_id in (("training_file", job.training_file), ("validation_file", job.validation_file)):
            if not file_id:
                continue
            copy = workspace.data / f"{file_id}.jsonl"
            if not copy.exists():
                row = session.scalar(select(FileRow).where(FileRow.id == file_id))
                if row is None or not self.blobs.path(file_id).is_file():
                    raise _JobProblem("file_not_found", f"{param} {file_id} was deleted before training started.",
                                      param)
                copy = workspace.add_data(f"{file_id}.jsonl", self.blobs.path(file_id))
            data[param] = copy
        hyperparameters = {name: job.hyperparameters.get(name, "auto")
                           for name in method_spec(job.method).hyperparameters}
        try:
            return TrainConfig(model=model.source, train_file=data["training_file"],
                               valid_file=data.get("validation_file"), method=job.method, seed=job.seed,
                               out=workspace.out, events_file=workspace.events, init_adapter=init_adapter,
                               **hyperparameters)
        except ValidationError as exc:
            raise _JobProblem("invalid_request", f"The job's settings can't be trained: {config_problems(exc)}",
                              None) from None

    @staticmethod
    def _parent_adapter(session, job: JobRow, workspace: Workspace) -> Path:
        """The adapter of the fine-tuned model (or checkpoint) the job continues, copied into the job's folder
        at its first start: deleting that model later can't break a resume."""
        copy = workspace.folder / "parent"
        if (copy / ADAPTER_FILES[0]).is_file():
            return copy
        parsed = parse_fine_tuned_id(job.model)
        table, column = (ModelRow, ModelRow.id) if parsed.step is None else (CheckpointRow, CheckpointRow.model)
        row = session.scalar(select(table).where(column == job.model, table.org == job.org))
        source = Path(row.path) if row is not None else None
        if source is None or not is_adapter_folder(source):
            raise _JobProblem("model_not_found", f"The model {job.model} was deleted before training started.",
                              "model")
        with atomic_directory(copy) as tmp:
            for name in ADAPTER_FILES:
                shutil.copyfile(source / name, tmp / name)
        return copy

    # ---- supervise -------------------------------------------------------------------------------
    def _supervise(self) -> None:
        for job_id in list(self.running):
            child = self.running[job_id]
            code = child.process.poll()
            with self.db.transaction() as session:
                job = session.scalar(select(JobRow).where(JobRow.id == job_id).with_for_update())
                if job is None or job.worker != self.id or job.status != JobStatus.RUNNING:
                    # cancelled, or taken over after our lease lapsed: the child must go
                    if code is None:  # what the child reports after a cancel is not relayed
                        child.process.kill()
                        child.process.wait()
                    del self.running[job_id]
                    continue
                relay(session, job, child.workspace, self.metrics_every)
                job.heartbeat_at = time.time()
                if job.control == Control.PAUSE and code is None:
                    child.workspace.request_stop()
                if code is None:
                    continue
                del self.running[job_id]
                self._ended(session, job, child.workspace, code)

    def _ended(self, session, job: JobRow, workspace: Workspace, code: int) -> None:
        if code == EXIT_DONE and workspace.training_complete():
            try:
                self._finish(session, job, workspace)
            except DiskFull:  # storing the results file: nothing of it was kept, the trained model is
                self._pause_for_space(session, job, "No space left on the server's disk for the job's results "
                                                    "file. Free some space, then resume the job.")
        elif code == EXIT_DISK_FULL:
            self._pause_for_space(session, job, (workspace.read_error() or {}).get("message")
                                  or disk_full_message(None))
        elif code == EXIT_STOPPED or (self._stop.is_set() and code != EXIT_BAD_INPUT):
            # stopped on request, or killed because it overran the shutdown grace period: both resume later
            if job.control == Control.PAUSE:
                move(job, JobStatus.PAUSED)
                job.control = None
                add_event(session, job, f"Fine-tuning job paused at step {job.last_step_reported} (checkpoint "
                                        "saved); resume continues from it")
            else:  # stopped for a shutdown: queue it again, it resumes from its checkpoint
                move(job, JobStatus.QUEUED)
        else:
            error = workspace.read_error() or {}
            if code != EXIT_BAD_INPUT and not error:
                error = {"code": "internal_error", "message": f"The training process exited with code {code}. "
                                                              f"Last lines of its log:\n{workspace.log_tail()}"}
            message = error.get("message", "training failed").replace(str(workspace.data) + os.sep, "")
            self._fail(session, job, error.get("code", "internal_error"), message, error.get("param"))

    def _finish(self, session, job: JobRow, workspace: Workspace) -> None:
        """Record a trained job: results file, model registration and the final fields, in one transaction."""
        record = workspace.training_record()
        result_id = new_id("file-")
        size, sha256 = self.blobs.put_file(result_id, workspace.out / "results.csv")
        session.add(FileRow(id=result_id, org=job.org, filename="step_metrics.csv", purpose="fine-tune-results",
                            bytes=size, sha256=sha256, status="processed"))
        model_id = planned_model_id(job)
        session.add(ModelRow(id=model_id, org=job.org, job_id=job.id, base_model=base_model_of(job.model),
                             path=str(workspace.out)))
        move(job, JobStatus.SUCCEEDED)
        job.fine_tuned_model, job.trained_tokens, job.result_files = model_id, record.get("trained_tokens"), [result_id]
        if record.get("status") == RunStatus.EARLY_STOPPED:
            add_event(session, job, "Training stopped early: the validation loss had stopped improving")
        add_event(session, job, f"New fine-tuned model created: {model_id}")
        add_event(session, job, "The job has successfully completed")

    def _pause_for_space(self, session, job: JobRow, message: str) -> None:
        """Paused, not failed: once space is freed, resuming continues from the last checkpoint."""
        move(job, JobStatus.PAUSED)
        job.control = None
        add_event(session, job, f"Fine-tuning job paused: {message}", level="error")

    def _fail(self, session, job: JobRow, code: str, message: str, param: str | None) -> None:
        move(job, JobStatus.FAILED)
        job.error = {"code": code, "message": message, "param": param}
        add_event(session, job, f"Fine-tuning job failed: {message}", level="error")

    # ---- shutdown ----------------------------------------------------------------------------------
    def _shutdown_children(self) -> None:
        """Ask every child to stop at a checkpoint, wait for them, and queue their jobs again."""
        for child in self.running.values():
            child.workspace.request_stop()
        deadline = time.time() + STOP_GRACE_SECONDS
        for child in self.running.values():
            try:
                child.process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                child.process.kill()
        for _ in range(2):
            try:
                self._supervise()
                break
            except Exception:  # noqa: BLE001
                log.exception("recording stopped jobs")


class _JobProblem(Exception):
    def __init__(self, code: str, message: str, param: str | None):
        super().__init__(message)
        self.code, self.message, self.param = code, message, param

