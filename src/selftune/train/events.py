"""The trainer -> worker contract: the event stream a run appends to and the state each checkpoint keeps.

Both are written and read by the classes below, so the trainer (which writes them) and the worker's
relay (which reads them in another process, maybe another version later) can't disagree on a field.
Nothing here imports torch: the worker reads these without loading a model.

- ``events_file`` (``--events``, the job's ``events.jsonl``): one :data:`TrainEvent` per line,
  appended and flushed by :class:`EventLog` as the run goes, read back by :func:`parse_event`.
- ``trainer_state.json`` in every checkpoint: a :class:`TrainerState` (where the run is, the metrics
  so far, and the fingerprint a resumption must match).
- ``training.json`` in the output folder, written last: its ``status`` is a :class:`RunStatus`.

Metric names follow the hosted results file (``train_accuracy``); the hosted job events and
checkpoints name two of them differently, which :func:`hosted_metrics` knows.
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict

from selftune.store.atomic import atomic_write
from selftune.train.hyperparams import Hyperparameters

STATE_FILE = "trainer_state.json"
TRAINING_JSON = "training.json"  # the output folder's record (train/output.py); written last, it marks the folder done
# our metric name -> the hosted API's, in job events and checkpoint metrics
_HOSTED_NAMES = {"train_accuracy": "train_mean_token_accuracy", "tokens_per_s": "tokens_per_second"}


def hosted_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` under the names the hosted API gives them."""
    return {_HOSTED_NAMES.get(name, name): value for name, value in metrics.items()}


class RunStatus(StrEnum):
    """How a run ended (``TrainResult.status``, ``training.json``'s ``status``)."""

    SUCCEEDED = "succeeded"
    STOPPED = "stopped"  # asked to stop: saved a checkpoint, a resumption continues it
    EARLY_STOPPED = "early_stopped"  # the validation loss stopped improving; the output is written


# ---- events -----------------------------------------------------------------------------------
class _Event(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")  # a diverging run's NaN loss is reported, not lost

    time: float = Field(default_factory=lambda: round(time.time(), 3), description="Unix time it happened.")


class StartEvent(_Event):
    """The run has its data and settings (once per process: a resumed run starts again)."""

    type: Literal["start"] = "start"
    hyperparameters: Hyperparameters
    examples: int
    total_steps: int
    tokens_per_step: int
    resumed_at_step: int | None = Field(None, description="The checkpoint's step when resuming.")


class StepEvent(_Event):
    """One optimizer step done."""

    type: Literal["step"] = "step"
    step: int
    total_steps: int
    epoch: int
    train_loss: float
    train_accuracy: float
    learning_rate: float
    grad_norm: float
    tokens_per_s: float
    elapsed: float = Field(description="Seconds of training so far, across resumptions.")

    def hosted_data(self) -> dict[str, Any]:
        """The ``data`` of the hosted ``metrics`` job event for this step."""
        return hosted_metrics(self.model_dump(include={"step", "total_steps", "train_loss", "train_accuracy",
                                                       "learning_rate", "tokens_per_s"}))


class EvalEvent(_Event):
    """The validation file was evaluated."""

    type: Literal["eval"] = "eval"
    step: int
    valid_loss: float
    valid_mean_token_accuracy: float

    def hosted_data(self) -> dict[str, Any]:
        return self.model_dump(include={"step", "valid_loss", "valid_mean_token_accuracy"})


class EpochEvent(_Event):
    type: Literal["epoch"] = "epoch"
    epoch: int
    step: int


class CheckpointEvent(_Event):
    type: Literal["checkpoint"] = "checkpoint"
    step: int
    path: Path


class PlanEvent(_Event):
    """The time budget changed the number of steps."""

    type: Literal["plan"] = "plan"
    step: int
    total_steps: int
    reason: str


class EarlyStopEvent(_Event):
    type: Literal["early_stop"] = "early_stop"
    step: int
    best_valid_loss: float


class StoppedEvent(_Event):
    """Stopped on request at a checkpoint; a resumption continues from it."""

    type: Literal["stopped"] = "stopped"
    step: int


class WarningEvent(_Event):
    type: Literal["warning"] = "warning"
    message: str


TrainEvent = Annotated[Union[StartEvent, StepEvent, EvalEvent, EpochEvent, CheckpointEvent, PlanEvent, EarlyStopEvent,
                             StoppedEvent, WarningEvent], Field(discriminator="type")]
_EVENT = TypeAdapter(TrainEvent)


def parse_event(line: str | bytes) -> TrainEvent:
    """One line of an events file (raises pydantic's ValidationError when it is not an event)."""
    return _EVENT.validate_json(line)


def read_events(path: Path) -> list[TrainEvent]:
    with open(path, "rb") as f:
        return [parse_event(line) for line in f if line.strip()]


class EventLog:
    """Appends one event per line (and flushes it) so a worker can follow a run as it goes."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: _Event) -> None:
        if not self.path:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(event.model_dump_json() + "\n")


# ---- checkpoint state ------------------------------------------------------------------------------
class ResultRow(TypedDict):
    """One step's row of the results file; the validation columns only where it was evaluated."""

    step: int
    train_loss: float
    train_accuracy: float
    valid_loss: float | None
    valid_mean_token_accuracy: float | None


RESULTS_COLUMNS = list(ResultRow.__annotations__)


class RunState(BaseModel):
    """Where the run is; the trainer updates it as it goes and every checkpoint saves it."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    total_steps: int = 0
    elapsed: float = 0.0
    tokens_seen: int = 0
    results: list[ResultRow] = Field(default_factory=list)
    best_valid_loss: float | None = None
    evals_since_best: int = 0
    stopped_early: bool = False

    def metrics_at(self, step: int) -> ResultRow | None:
        """The row of ``step`` (else the last one, None when there is none)."""
        return next((r for r in reversed(self.results) if r["step"] == step),
                    self.results[-1] if self.results else None)


class TrainerState(BaseModel):
    """A checkpoint's ``trainer_state.json``."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    run: RunState
    fingerprint: dict[str, Any] = Field(description="What must not change between a run and its resumption; "
                                                    "compared as a whole.")

    @classmethod
    def read(cls, checkpoint: Path) -> TrainerState:
        return cls.model_validate_json((Path(checkpoint) / STATE_FILE).read_bytes())

    def write(self, checkpoint: Path) -> None:
        with atomic_write(Path(checkpoint) / STATE_FILE) as f:
            f.write(self.model_dump_json(indent=1))
