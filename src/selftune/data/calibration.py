"""How fast this machine trains a model: the last real run's figure, else a few steps of the real trainer.

A figure from elsewhere, or a step that is not the trainer's own (another precision, other packing,
an unrepresentative sequence), is wrong by up to ~70x on some CPU. So the quick measurement runs
:class:`selftune.train.Trainer` itself, as a job with default settings would run (LoRA defaults,
the auto batch size of the whole file, the precision the hardware picks), on an evenly spread
sample of the file's own examples, and stops it after a warm-up step and a few timed steps.

Speed has one meaning everywhere: **tokens the trainer steps over per second of training**, where a
step's tokens are every token of its examples' conversations, each cut at the context
(``TrainingData.lengths``; both answers of a preference pair). A real run records
``tokens_seen / elapsed`` (:func:`record_training_speed`), the measurement the same ratio over its
timed steps, and ``selftune data stats`` divides :func:`selftune.data.estimate.stepped_tokens` by it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import statistics
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from selftune.config import get_settings
from selftune.data.reader import BOM
from selftune.store.atomic import atomic_write
from selftune.train.methods import Method

WARMUP_STEPS = 1  # first-call allocations and kernel selection are not training speed
MEASURED_STEPS = 5  # timed steps after the warm-up...
MEASURE_SECONDS = 6.0  # ...or fewer, once the timed ones have taken this long


class Calibration(BaseModel):
    model: str
    machine: str
    tokens_per_second: float
    method: str
    measured_at: str
    source: Literal["run", "measured"] = "measured"  # a real run's figure is never replaced by a measurement


def precision_name(dtype) -> str:
    """The precision path a dtype from :func:`selftune.hardware.autocast_dtype` stands for."""
    import torch

    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def chosen_precision() -> str:
    """The precision a job with default settings trains in on this machine (hardware's one choice)."""
    from selftune.hardware import paths, training_device

    return paths(device=training_device()).precision


def machine_fingerprint(precision: str | None = None) -> str:
    """What decides training speed here: CPU model, core count, GPU, torch version and precision
    path (an AVX2 CPU trains in fp32, an AVX512-BF16 one in bf16, at very different speeds)."""
    import torch

    from selftune.hardware import cpu, gpu

    found = gpu()
    return (f"{cpu().model} | {os.cpu_count()} cpus | {found.name if found else 'no-gpu'} | "
            f"torch {torch.__version__} | {precision or chosen_precision()}")


def _cache_file(model: str, machine: str, method: Method) -> Path:
    key = hashlib.sha256(f"{model}\n{machine}\n{method}".encode()).hexdigest()[:16]
    return get_settings().calibration_dir / f"{key}.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def record_training_speed(model: str, tokens_per_second: float, method: str, precision: str | None = None,
                          training_method: Method = Method.SUPERVISED) -> Calibration:
    """Store the speed a real LoRA run reached (``selftune.train.run`` calls this), so later estimates
    for the same model, machine and precision use it instead of a quick measurement."""
    machine = machine_fingerprint(precision)
    result = Calibration(model=model, machine=machine, tokens_per_second=tokens_per_second, method=method,
                         measured_at=_now(), source="run")
    with atomic_write(_cache_file(model, machine, training_method)) as f:
        f.write(result.model_dump_json(indent=2))
    return result


def cached_speed(model: str, method: Method = Method.SUPERVISED) -> Calibration | None:
    """The stored figure for this model, machine and precision path, or None."""
    cache = _cache_file(model, machine_fingerprint(), method)
    try:
        return Calibration.model_validate_json(cache.read_text())
    except (OSError, ValueError):
        return None  # none yet, or a corrupt one: measured again, not trusted


def training_speed(model: str, data: str | Path, n_examples: int, method: Method = Method.SUPERVISED,
                   skip: Collection[int] = (), refresh: bool = False) -> Calibration:
    """Tokens per second of LoRA training for ``model`` on this machine: the last real run's figure
    when there is one, else a few steps of the trainer on examples of ``data`` (a valid file of
    ``n_examples`` examples; the lines in ``skip`` are not sampled), cached. ``refresh`` measures
    again unless a real run's figure is stored."""
    cached = cached_speed(model, method)
    if cached is not None and (cached.source == "run" or not refresh):
        return cached
    tokens_per_second, steps, precision = measure(model, data, n_examples, method, skip)
    machine = machine_fingerprint(precision)
    result = Calibration(
        model=model, machine=machine, tokens_per_second=tokens_per_second, measured_at=_now(),
        method=f"selftune's trainer, {method} LoRA defaults, {precision}, {steps} timed steps "
               f"after {WARMUP_STEPS} on examples of {Path(data).name}",
    )
    with atomic_write(_cache_file(model, machine, method)) as f:
        f.write(result.model_dump_json(indent=2))
    return result


def measure(model: str, data: str | Path, n_examples: int, method: Method = Method.SUPERVISED,
            skip: Collection[int] = ()) -> tuple[float, int, str]:
    """(tokens/s, timed steps, precision): the real trainer run as a default job on this file would
    run, stopped after ``WARMUP_STEPS`` + at most ``MEASURED_STEPS`` steps or ``MEASURE_SECONDS``.
    The speed is the median timed step's, so one step slowed by another process (or a short step at
    the end of a length-sorted window) does not decide the estimate."""
    from selftune.train import TrainConfig
    from selftune.train.hyperparams import resolve
    from selftune.train.trainer import Trainer

    # the step size a job on the whole file gets: its auto batch size times the mean example length
    batch = resolve(TrainConfig(model=model, train_file=Path(data), method=method), n_examples).batch_size
    with tempfile.TemporaryDirectory(prefix="selftune-calibration-") as tmp:
        wanted = (WARMUP_STEPS + MEASURED_STEPS + 1) * batch
        sample = _sample(Path(data), n_examples, wanted, Path(tmp) / "sample.jsonl", frozenset(skip))
        config = TrainConfig(model=model, train_file=sample, method=method, batch_size=batch, out=Path(tmp) / "out")
        marks: list[tuple[int, float]] = []  # (tokens seen, seconds of training) after each step

        def enough() -> bool:
            marks.append((trainer.state.tokens_seen, trainer.state.elapsed))
            timed = len(marks) - WARMUP_STEPS
            if timed <= 0:
                return False
            return timed >= MEASURED_STEPS or marks[-1][1] - marks[WARMUP_STEPS - 1][1] >= MEASURE_SECONDS

        trainer = Trainer(config, should_stop=enough)
        with _quiet():
            trainer.setup()
            trainer.train()
    warmed = marks[WARMUP_STEPS - 1:] if len(marks) > WARMUP_STEPS else [(0, 0.0), *marks]  # else all timed
    rates = [(b[0] - a[0]) / (b[1] - a[1]) for a, b in zip(warmed, warmed[1:], strict=False)]
    return statistics.median(rates), len(rates), precision_name(trainer.dtype)


def _sample(path: Path, n_examples: int, wanted: int, dest: Path, skip: frozenset[int] = frozenset()) -> Path:
    """``wanted`` examples spread evenly over the file (all when it has no more), copied verbatim;
    lines in ``skip`` (1-based, as stage 1 numbers them) are left out."""
    count = n_examples - len(skip)
    picked = {i * count // wanted for i in range(wanted)} if wanted < count else None
    with open(path, "rb") as src, open(dest, "wb") as out:
        index = 0
        for number, raw in enumerate(src, 1):
            raw = raw.removeprefix(BOM).strip() if number == 1 else raw.strip()
            if not raw or number in skip:
                continue
            if picked is None or index in picked:
                out.write(raw + b"\n")
            index += 1
    return dest


@contextmanager
def _quiet() -> Iterator[None]:
    """The trainer's warnings (e.g. truncated examples) would name the temporary sample; stats reports
    the file's own figures instead."""
    logger = logging.getLogger("selftune.train")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
