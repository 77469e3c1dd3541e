"""Turn a training child's ``events.jsonl`` into job events, checkpoint rows and job fields.

Exactly once, across crashes: the byte offset of the last relayed line is stored on the job in the
same transaction as the rows made from it, so a restarted worker continues where the last commit
ended. A resumed run repeats the steps after its checkpoint; steps and evaluations at or before
the last one reported are skipped, so nothing is reported twice.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from selftune.jobs.events import add_event
from selftune.jobs.workspace import Workspace
from selftune.models.ids import fine_tuned_id
from selftune.store.tables import CheckpointRow, EventRow, JobRow, new_id

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
            line = json.loads(raw)
        except ValueError:
            log.warning("%s: skipping an unreadable event line", job.id)
            continue
        handler = HANDLERS.get(line.get("type"))
        if isinstance(line.get("message"), str):  # the job's data folder is the server's business, not the user's
            line["message"] = line["message"].replace(str(workspace.data) + os.sep, "")
        if handler is not None:
            handler(session, job, line, metrics_every)
    job.events_offset += end


def _when(line: dict) -> int:
    return int(line.get("time") or time.time())


def _start(session, job: JobRow, line: dict, _every: int) -> None:
    hp = line.get("hyperparameters") or {}
    resolved = {k: hp[k] for k in ("n_epochs", "batch_size", "learning_rate_multiplier") if k in hp}
    if job.method == "dpo":
        resolved["beta"] = hp.get("beta")
    job.resolved_hyperparameters = resolved
    resumed = line.get("resumed_at_step")
    if resumed:
        add_event(session, job, f"Resumed training from the checkpoint at step {resumed}", created_at=_when(line))
    else:
        add_event(session, job, f"Fine-tuning job started: {line.get('examples')} examples, "
                  f"{line.get('total_steps')} steps", created_at=_when(line),
                  data={"hyperparameters": resolved, "total_steps": line.get("total_steps")})


def _step(session, job: JobRow, line: dict, every: int) -> None:
    step, total = int(line["step"]), int(line.get("total_steps") or 0)
    if step <= job.last_step_reported:
        return
    job.last_step_reported = step
    elapsed = float(line.get("elapsed") or 0)
    if step and total:
        job.estimated_finish = int(time.time() + elapsed / step * max(0, total - step))
    if step == 1 or step % every == 0 or step == total:
        data = {"step": step, "total_steps": total, "train_loss": line.get("train_loss"),
                "train_mean_token_accuracy": line.get("train_accuracy"), "learning_rate": line.get("learning_rate"),
                "tokens_per_second": line.get("tokens_per_s")}
        add_event(session, job, f"Step {step}/{total}: training loss={line.get('train_loss', 0):.4f}",
                  type="metrics", data=data, created_at=_when(line))


def _eval(session, job: JobRow, line: dict, _every: int) -> None:
    step = int(line["step"])
    if step <= job.last_eval_reported:
        return
    job.last_eval_reported = step
    data = {"step": step, "valid_loss": line.get("valid_loss"),
            "valid_mean_token_accuracy": line.get("valid_mean_token_accuracy")}
    add_event(session, job, f"Step {step}: validation loss={line.get('valid_loss', 0):.4f}, token accuracy="
              f"{line.get('valid_mean_token_accuracy', 0):.4f}", type="metrics", data=data, created_at=_when(line))


def _checkpoint(session, job: JobRow, line: dict, _every: int) -> None:
    step, path = int(line["step"]), Path(line["path"])
    exists = session.scalar(select(CheckpointRow.id).where(CheckpointRow.job_id == job.id,
                                                           CheckpointRow.step_number == step))
    if exists is None:
        session.add(CheckpointRow(id=new_id("ftckpt-"), job_id=job.id, org=job.org, created_at=_when(line),
                                  step_number=step, metrics=_checkpoint_metrics(path, step),
                                  model=f"{planned_model_id(job)}:ckpt-step-{step}", path=str(path)))
        add_event(session, job, f"Checkpoint created at step {step}", created_at=_when(line))
    for row in session.scalars(select(CheckpointRow).where(CheckpointRow.job_id == job.id)):
        if row.step_number != step and not Path(row.path).is_dir():  # pruned by the trainer (keeps the last 3)
            session.delete(row)


def _checkpoint_metrics(path: Path, step: int) -> dict:
    """The step's metrics as the checkpoint itself recorded them (its trainer_state.json)."""
    try:
        results = json.loads((path / "trainer_state.json").read_text())["run"]["results"]
    except (OSError, ValueError, KeyError):
        return {"step": step}
    row = next((r for r in reversed(results) if r.get("step") == step), results[-1] if results else {})
    metrics = {"step": step, "train_loss": row.get("train_loss"),
               "train_mean_token_accuracy": row.get("train_accuracy"), "valid_loss": row.get("valid_loss"),
               "valid_mean_token_accuracy": row.get("valid_mean_token_accuracy")}
    return {k: v for k, v in metrics.items() if v is not None}


def _warning(session, job: JobRow, line: dict, _every: int) -> None:
    message = line.get("message", "")
    repeated = session.scalar(select(EventRow.id).where(EventRow.job_id == job.id, EventRow.level == "warn",
                                                         EventRow.message == message))
    if repeated is None:  # a resumed run warns about the same data again
        add_event(session, job, message, level="warn", created_at=_when(line))


def _early_stop(session, job: JobRow, line: dict, _every: int) -> None:
    add_event(session, job, f"Early stopping at step {line.get('step')}: validation loss stopped improving "
              f"(best {line.get('best_valid_loss', 0):.4f})", created_at=_when(line))


def planned_model_id(job: JobRow) -> str:
    return str(fine_tuned_id(job.model, job.org, job.suffix, job.id))


HANDLERS = {"start": _start, "step": _step, "eval": _eval, "checkpoint": _checkpoint, "warning": _warning,
            "early_stop": _early_stop}
