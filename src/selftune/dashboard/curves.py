"""The job page's curves: a run's metrics events as columns the chart library draws directly.

The page asks for the events after the last one it has (``after``) and appends them, so a run of
10,000 steps is sent once, not again at every poll; ``finished`` tells it when to stop asking. Steps
per epoch and tokens per step (for the epoch marks and the epoch / tokens axes) come from the run's
start event, which is in the first answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from selftune.api.fine_tuning.protocol import FineTuningJob, FineTuningJobEvent
from selftune.api.fine_tuning.service import RunEvent
from selftune.jobs.lifecycle import TERMINAL

# column in the answer -> field of a step's metrics event (selftune.train.events.StepEvent.hosted_data)
TRAIN_COLUMNS = {"step": "step", "loss": "train_loss", "accuracy": "train_mean_token_accuracy",
                 "learning_rate": "learning_rate", "tokens_per_second": "tokens_per_second"}
# ... and of a validation's (EvalEvent.hosted_data)
VALID_COLUMNS = {"step": "step", "loss": "valid_loss", "accuracy": "valid_mean_token_accuracy"}


def _number(value: Any) -> float | None:
    """A finite number, else None: a diverged run's NaN loss is a gap in the curve, not invalid JSON."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    return None


def curves(job: FineTuningJob, events: Sequence[RunEvent | FineTuningJobEvent]) -> dict:
    train: dict[str, list] = {name: [] for name in TRAIN_COLUMNS}
    valid: dict[str, list] = {name: [] for name in VALID_COLUMNS}
    run = None
    for event in events:
        data = event.data or {}
        if event.type == "metrics" and "train_loss" in data:
            for name, field in TRAIN_COLUMNS.items():
                train[name].append(_number(data.get(field)))
        elif event.type == "metrics" and "valid_loss" in data:
            for name, field in VALID_COLUMNS.items():
                valid[name].append(_number(data.get(field)))
        elif "total_steps" in data:
            run = _run(data)
    return {"status": job.status, "finished": job.status in TERMINAL, "trained_tokens": job.trained_tokens,
            "run": run, "train": train, "valid": valid, "last_event": events[-1].id if events else None}


def _run(start: dict) -> dict:
    """The start event's plan: how many steps make an epoch, and how many tokens a step aims at."""
    total = start.get("total_steps") or 0
    epochs = (start.get("hyperparameters") or {}).get("n_epochs")
    return {"total_steps": total, "n_epochs": epochs,
            "steps_per_epoch": total / epochs if total and isinstance(epochs, int) and epochs > 0 else None,
            "tokens_per_step": start.get("tokens_per_step")}
