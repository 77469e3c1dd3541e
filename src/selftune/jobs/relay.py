"""Turn a training child's ``events.jsonl`` into job events, checkpoint rows and job fields.

Exactly once, across crashes: the byte offset of the last relayed line is stored on the job in the
same transaction as the rows made from it, so a restarted worker continues where the last commit
ended. A resumed run repeats the steps after its checkpoint; steps and evaluations at or before
the last one reported are skipped, so nothing is reported twice.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from selftune.jobs.events import add_event
from selftune.jobs.workspace import Workspace
from selftune.models.ids import FineTunedId, base_model_of, fine_tuned_id
from selftune.store.tables import CheckpointRow, EventRow, JobRow, new_id
from selftune.train.events import (
    CheckpointEvent,
    EarlyStopEvent,
    EvalEvent,
    StartEvent,
    StepEvent,
    TrainerState,
    WarningEvent,
    hosted_metrics,
    parse_event,
)
from selftune.train.methods import method_spec

log = logging.getLogger(__name__)
MAX_BATCH_BYTES = 4 * 1024 * 1024


def relay(session: Session, job: JobRow, workspace: Workspace, metrics_every: int) -> None:
    """Relay the complete lines written since ``job.events_offset`` (caller commits)."""
    try:
        with open(workspace.events, "rb") as f:
            f.seek(job.events_offset)
            chunk = f.read(MAX_BATCH_BYTES)
    except FileNotFoundError:
        return
    end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
    for raw in chunk[:end].splitlines():
        try:
            event = parse_event(raw)
        except ValidationError:
            log.warning("%s: skipping an unreadable event line", job.id)
            continue
        if isinstance(event, WarningEvent):  # the job's data folder is the server's business, not the user's
            event.message = event.message.replace(str(workspace.data) + os.sep, "")
        handler = HANDLERS.get(type(event))
        if handler is not None:
            handler(session, job, event, metrics_every)
    job.events_offset += end


def _start(session, job: JobRow, event: StartEvent, _every: int) -> None:
    resolved = {name: getattr(event.hyperparameters, name) for name in method_spec(job.method).hyperparameters}
    job.resolved_hyperparameters = resolved
    if event.resumed_at_step:
        add_event(session, job, f"Resumed training from the checkpoint at step {event.resumed_at_step}",
                  created_at=int(event.time))
    else:
        add_event(session, job, f"Fine-tuning job started: {event.examples} examples, {event.total_steps} steps",
                  created_at=int(event.time), data={"hyperparameters": resolved, "total_steps": event.total_steps,
                                                    "tokens_per_step": event.tokens_per_step})


def _step(session, job: JobRow, event: StepEvent, every: int) -> None:
    step, total = event.step, event.total_steps
    if step <= job.last_step_reported:
        return
    job.last_step_reported = step
    if step and total:
        job.estimated_finish = int(time.time() + event.elapsed / step * max(0, total - step))
    if step == 1 or step % every == 0 or step == total:
        add_event(session, job, f"Step {step}/{total}: training loss={event.train_loss:.4f}", type="metrics",
                  data=event.hosted_data(), created_at=int(event.time))


def _eval(session, job: JobRow, event: EvalEvent, _every: int) -> None:
    if event.step <= job.last_eval_reported:
        return
    job.last_eval_reported = event.step
    add_event(session, job, f"Step {event.step}: validation loss={event.valid_loss:.4f}, token accuracy="
              f"{event.valid_mean_token_accuracy:.4f}", type="metrics", data=event.hosted_data(),
              created_at=int(event.time))


def _checkpoint(session, job: JobRow, event: CheckpointEvent, _every: int) -> None:
    step, path = event.step, event.path
    exists = session.scalar(select(CheckpointRow.id).where(CheckpointRow.job_id == job.id,
                                                           CheckpointRow.step_number == step))
    if exists is None:
        session.add(CheckpointRow(id=new_id("ftckpt-"), job_id=job.id, org=job.org, created_at=int(event.time),
                                  step_number=step, metrics=_checkpoint_metrics(path, step),
                                  model=str(planned_id(job).at_step(step)), path=str(path)))
        add_event(session, job, f"Checkpoint created at step {step}", created_at=int(event.time))
    for row in session.scalars(select(CheckpointRow).where(CheckpointRow.job_id == job.id)):
        if row.step_number != step and not Path(row.path).is_dir():  # pruned by the trainer (keeps the last 3)
            session.delete(row)


def _checkpoint_metrics(path: Path, step: int) -> dict:
    """The step's metrics as the checkpoint itself recorded them (its trainer_state.json)."""
    try:
        row = TrainerState.read(path).run.metrics_at(step) or {}
    except (OSError, ValidationError):
        row = {}
    return {k: v for k, v in hosted_metrics({**row, "step": step}).items() if v is not None}


def _warning(session, job: JobRow, event: WarningEvent, _every: int) -> None:
    repeated = session.scalar(select(EventRow.id).where(EventRow.job_id == job.id, EventRow.level == "warn",
                                                         EventRow.message == event.message))
    if repeated is None:  # a resumed run warns about the same data again
        add_event(session, job, event.message, level="warn", created_at=int(event.time))


def _early_stop(session, job: JobRow, event: EarlyStopEvent, _every: int) -> None:
    add_event(session, job, f"Early stopping at step {event.step}: validation loss stopped improving "
              f"(best {event.best_valid_loss:.4f})", created_at=int(event.time))


def planned_id(job: JobRow) -> FineTunedId:
    """The id the job's model gets when it succeeds (its checkpoints are ``.at_step(n)`` of it)."""
    return fine_tuned_id(base_model_of(job.model), job.org, job.suffix, job.id)


def planned_model_id(job: JobRow) -> str:
    return str(planned_id(job))


HANDLERS = {StartEvent: _start, StepEvent: _step, EvalEvent: _eval, CheckpointEvent: _checkpoint,
            WarningEvent: _warning, EarlyStopEvent: _early_stop}
