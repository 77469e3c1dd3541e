"""The tables behind the API: files, fine-tuning jobs, their events and checkpoints, fine-tuned models,
stored chat completions, evaluations, uploads, stored responses, batches.

Every row carries ``org``: the organisation of the API key that created it. Queries always filter on
it, so one customer never sees another's rows. Each table has an integer ``pk`` that gives a stable
order for cursor pagination (``after=<id>``), and the public string ``id`` the API shows.
Changes to these tables go through a new Alembic revision in ``store/migrations/versions``.
"""

from __future__ import annotations

import secrets
import string
import time

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """Random public ids in the hosted style (``file-``, ``ftjob-``...): unguessable, never sequential."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def now() -> int:
    return int(time.time())


class Base(DeclarativeBase):
    pass


class FileRow(Base):
    __tablename__ = "files"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    org: Mapped[str] = mapped_column(String(128), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # uploaded -> processed | error
    status_details: Mapped[str | None] = mapped_column(Text, nullable=True)
    format: Mapped[str | None] = mapped_column(String(8), nullable=True)  # sft | dpo, once validated
    examples: Mapped[int | None] = mapped_column(Integer, nullable=True)


class JobRow(Base):
    __tablename__ = "jobs"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    org: Mapped[str] = mapped_column(String(128), index=True)
    model: Mapped[str] = mapped_column(String(256))
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64), nullable=True)
    method: Mapped[str] = mapped_column(String(16))  # a selftune.train.methods.Method
    hyperparameters: Mapped[dict] = mapped_column(JSON)  # as requested, "auto" kept until training starts
    resolved_hyperparameters: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    metadata_: Mapped[dict | None] = mapped_column("metadata", JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # a selftune.jobs.lifecycle.JobStatus
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    estimated_finish: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(512), nullable=True)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    result_files: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # worker bookkeeping, not shown by the API
    control: Mapped[str | None] = mapped_column(String(16), nullable=True)  # a lifecycle.Control, asked by the API
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    events_offset: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes of the child's events relayed
    last_step_reported: Mapped[int] = mapped_column(Integer, default=0)  # a resumed run repeats steps after
    last_eval_reported: Mapped[int] = mapped_column(Integer, default=0)  # its checkpoint: they are not relayed twice


class EventRow(Base):
    __tablename__ = "events"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    job_id: Mapped[str] = mapped_column(String(64), ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    org: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    level: Mapped[str] = mapped_column(String(8))  # info | warn | error
    message: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(8))  # message | metrics
    data: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class CheckpointRow(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step_number"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    job_id: Mapped[str] = mapped_column(String(64), ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    org: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    step_number: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict] = mapped_column(JSON)
    model: Mapped[str] = mapped_column(String(512), index=True)  # ft:...:ckpt-step-N
    path: Mapped[str] = mapped_column(Text)  # the checkpoint folder (adapter or weights)


class ModelRow(Base):
    """A fine-tuned model: registered when its job succeeds, gone from the API once deleted."""

    __tablename__ = "models"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(512), unique=True, index=True)
    org: Mapped[str] = mapped_column(String(128), index=True)
    job_id: Mapped[str] = mapped_column(String(64))
    base_model: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    path: Mapped[str] = mapped_column(Text)  # the job's output folder


class CompletionRow(Base):
    """A chat completion stored with ``store: true``: the request and the answer, for distillation."""

    __tablename__ = "completions"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    org: Mapped[str] = mapped_column(String(128), index=True)
    model: Mapped[str] = mapped_column(String(512), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    metadata_: Mapped[dict | None] = mapped_column("metadata", JSON, nullable=True)
    request: Mapped[dict] = mapped_column(JSON)  # messages and sampling settings, as the client sent them
    response: Mapped[dict] = mapped_column(JSON)  # the chat.completion object returned


class EvaluationRow(Base):
    """One ``selftune eval`` run (from the command line or started from the dashboard): its settings, each
    model's headline figures as the report gave them, its progress while it runs, and its report folder."""

    __tablename__ = "evaluations"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    org: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # a selftune.api.evaluations.protocol.EvalStatus
    config: Mapped[dict] = mapped_column(JSON)  # the EvalConfig (no API keys), plus the data file's name shown
    figures: Mapped[list] = mapped_column(JSON, default=list)  # per model: model, grader, score, ci95, n, ...
    done: Mapped[int] = mapped_column(Integer, default=0)  # requests answered so far, all models together
    total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    report_dir: Mapped[str | None] = mapped_column(Text, nullable=True)  # report.html, report.json, results.jsonl


class UploadRow(Base):
    """An upload in parts (``/v1/uploads``): what the client declared, and the File it became once completed."""

    __tablename__ = "uploads"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    org: Mapped[str] = mapped_column(String(128), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str] = mapped_column(String(32))
    mime_type: Mapped[str] = mapped_column(String(128))
    bytes: Mapped[int] = mapped_column(BigInteger)  # as declared; the parts must add up to it
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # an api.uploads.protocol.UploadStatus
    file_expires_after: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the File's expires_after
    file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # once completed


class UploadPartRow(Base):
    """One part of an upload; its bytes are a blob named by the part id until the upload ends."""

    __tablename__ = "upload_parts"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    upload_id: Mapped[str] = mapped_column(String(64), ForeignKey("uploads.id", ondelete="CASCADE"), index=True)
    org: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    bytes: Mapped[int] = mapped_column(BigInteger)


class ResponseRow(Base):
    """A response of ``/v1/responses`` stored with ``store`` (the default): the answer, its input items, and
    the conversation before them, so that ``previous_response_id`` continues it even once an earlier
    response of the chain is deleted."""

    __tablename__ = "responses"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    org: Mapped[str] = mapped_column(String(128), index=True)
    model: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    history: Mapped[list] = mapped_column(JSON)  # items of the earlier responses of the chain, oldest first
    input_items: Mapped[list] = mapped_column(JSON)  # this response's input, as input_items lists it
    response: Mapped[dict] = mapped_column(JSON)  # the response object returned


class BatchRow(Base):
    """A batch of ``/v1/batches``: what was asked, where it stands, and the serving process running it.

    ``runner`` and ``heartbeat_at`` are the claim of the process answering its requests (as a job's
    ``worker``): a batch whose heartbeat goes stale is taken over, and only its unanswered requests run."""

    __tablename__ = "batches"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    org: Mapped[str] = mapped_column(String(128), index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), index=True)  # an api.batches.protocol.BatchStatus
    metadata_: Mapped[dict | None] = mapped_column("metadata", JSON, nullable=True)
    output_expires_after: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # seconds, for its files
    model: Mapped[str | None] = mapped_column(String(512), nullable=True)  # once validated, if one for all lines
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    in_progress_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finalizing_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    completed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expired_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cancelling_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cancelled_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    errors: Mapped[list | None] = mapped_column(JSON, nullable=True)  # why the whole batch failed: BatchError dicts
    output_file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # runner bookkeeping, not shown by the API
    runner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class BatchRequestRow(Base):
    """One line of a batch's input file: the request (or why the line can't be one), then its answer.

    An answer is written in the same transaction as the batch's counts, once: a request whose row says
    ``done`` or ``failed`` is never run again, whatever restarts come after."""

    __tablename__ = "batch_requests"
    __table_args__ = (UniqueConstraint("batch_id", "line"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)  # batch_req_..., the output line's id
    batch_id: Mapped[str] = mapped_column(String(64), ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    line: Mapped[int] = mapped_column(Integer)  # 1-based line of the input file
    custom_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    body: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the request body; None for a malformed line
    status: Mapped[str] = mapped_column(String(8), index=True)  # pending | done | failed
    response: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # {status_code, request_id, body}
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # {code, message[, line]}: no response at all
