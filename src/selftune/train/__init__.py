"""Stage 2: fine-tune a base model on a validated file — LoRA or full, supervised or DPO.

``run(TrainConfig(...))`` is the whole run; :class:`Trainer` exposes its lifecycle for the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from selftune.train.config import TrainConfig
from selftune.train.events import RunStatus
from selftune.train.methods import Method

if TYPE_CHECKING:
    from selftune.train.trainer import Trainer, TrainResult


def __getattr__(name: str):
    """``Trainer`` and ``TrainResult`` load torch; importing them lazily keeps ``TrainConfig`` and the
    hyperparameter rules importable by the web layer, which must start without torch."""
    if name in ("Trainer", "TrainResult"):
        from selftune.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run(config: TrainConfig, should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train as ``config`` says and write the output folder; returns the run's outcome.

    ``should_stop`` is polled after every step; when it returns True the run saves a checkpoint
    and returns with status ``"stopped"`` (``config.resume`` continues it later).
    """
    from selftune.train.output import write_output
    from selftune.train.trainer import Trainer

    trainer = Trainer(config, should_stop=should_stop)
    trainer.setup()
    result = trainer.train()
    if result.status != RunStatus.STOPPED and trainer.dist.is_main:
        write_output(trainer, result)
        _record_speed(trainer, result)
    trainer.dist.barrier()
    return result


def _record_speed(trainer: Trainer, result: TrainResult) -> None:
    """A LoRA run's measured speed feeds stage 1's time estimates (``selftune data stats``), per
    method and precision path; the unit is the one :mod:`selftune.data.calibration` defines."""
    from selftune.data.calibration import precision_name, record_training_speed

    config, state = trainer.config, result.state
    if not config.full and not trainer.dist.enabled and state.elapsed > 0:
        record_training_speed(config.model, state.tokens_seen / state.elapsed,
                              f"selftune train, {config.method} LoRA r{config.lora_rank}, {state.global_step} "
                              f"steps on {trainer.train_data.path.name}",
                              precision=precision_name(trainer.dtype), training_method=config.method)


__all__ = ["Method", "RunStatus", "TrainConfig", "TrainResult", "Trainer", "run"]
