"""A fine-tuning job's lifecycle: its statuses, the moves between them, and whether a file can feed it.

::

    validating_files -> queued -> running -> succeeded | failed | cancelled
           |              |          |  ^
           +--> paused <--+----------+  +-- taken over (a worker died) or queued again (shutdown)

The API (create, cancel, pause, resume) and the worker (promote, claim, finish, fail) move jobs
only through :func:`move`, which refuses a move the table below does not allow; the methods a
job can use are in :mod:`selftune.train.methods`. A new status is one member and one row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from selftune.store.tables import FileRow, JobRow, now
from selftune.train.methods import format_name, method_spec


class JobStatus(StrEnum):
    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Control(StrEnum):
    """What the API asked of a running job; the worker that runs it carries it out."""

    CANCEL = "cancel"
    PAUSE = "pause"


S = JobStatus
INITIAL = S.VALIDATING_FILES
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.VALIDATING_FILES: frozenset({S.QUEUED, S.PAUSED, S.CANCELLED, S.FAILED}),
    S.QUEUED: frozenset({S.RUNNING, S.PAUSED, S.CANCELLED}),
    # running -> running: another worker takes over a job whose worker died; -> queued: a worker shut down
    S.RUNNING: frozenset({S.RUNNING, S.QUEUED, S.PAUSED, S.SUCCEEDED, S.FAILED, S.CANCELLED}),
    S.PAUSED: frozenset({S.QUEUED, S.VALIDATING_FILES, S.CANCELLED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
TERMINAL = frozenset(s for s, moves in TRANSITIONS.items() if not moves)
ACTIVE = frozenset(JobStatus) - TERMINAL
PAUSES_AT_ONCE = frozenset({S.VALIDATING_FILES, S.QUEUED})  # not started: nothing to checkpoint


class IllegalTransition(RuntimeError):
    """A bug: code tried a move the lifecycle does not have."""


def can_move(status: str, to: JobStatus) -> bool:
    return to in TRANSITIONS[JobStatus(status)]


def move(job: JobRow, to: JobStatus) -> None:
    """Set ``job.status``; a job leaving ``running`` has no worker and no estimate any more, and a
    job that ends gets its ``finished_at``."""
    if not can_move(job.status, to):
        raise IllegalTransition(f"job {job.id}: {job.status} -> {to} is not a move of the job lifecycle")
    if job.status == S.RUNNING and to != S.RUNNING:
        job.worker, job.estimated_finish = None, None
    if to in TERMINAL:
        job.finished_at = now()
    job.status = to


def resumed_status(job: JobRow) -> JobStatus:
    """Where a paused job goes on resume. A job that has started owns copies of its files (deleting the
    uploads can't hurt it): straight back to the queue; one paused before it started has its files
    checked again first."""
    return S.QUEUED if job.attempts else S.VALIDATING_FILES


# ---- can this file feed this job? ----------------------------------------------------------------
@dataclass(frozen=True)
class FileProblem:
    code: str  # the API's error code for it
    message: str


def file_problem(row: FileRow | None, file_id: str, param: str, method: str) -> FileProblem | None:
    """Why the file ``file_id`` (given as ``param``) can't be used to train with ``method``; None when it
    can, or may (still ``uploaded``: its check has not finished)."""
    if row is None:
        return FileProblem("file_not_found", f"invalid {param}: no such file {file_id!r}.")
    if row.purpose != "fine-tune":
        return FileProblem("invalid_file_purpose", f"invalid {param}: {file_id} has purpose {row.purpose!r}; "
                                                   "upload it with purpose 'fine-tune'.")
    if row.status == "error":
        return FileProblem("invalid_file", f"invalid {param}: {file_id} failed validation. {row.status_details}")
    wanted = method_spec(method).file_format
    if row.status == "processed" and row.format != wanted:
        return FileProblem("invalid_file_format", f"invalid {param}: {file_id} is in {format_name(row.format)} "
                                                  f"format; the {method} method needs {format_name(wanted)} examples.")
    return None
