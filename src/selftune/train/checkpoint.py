"""Checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint folder holds the trainable weights (adapter or full model, safetensors), the
optimizer state, the RNG states and ``trainer_state.json`` (a
:class:`~selftune.train.events.TrainerState`: position in the data order, metrics so far). It is
written into a temporary folder and renamed into place, so a crash mid-write leaves the previous
checkpoint intact; only the newest ``keep`` are kept.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import torch

from selftune.store.atomic import atomic_directory
from selftune.train.events import STATE_FILE, TrainerState

OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "rng.pt"
_NAME = re.compile(r"^step-(\d+)$")


def checkpoints_dir(out: Path) -> Path:
    return Path(out) / "checkpoints"


def checkpoint_path(out: Path, step: int) -> Path:
    return checkpoints_dir(out) / f"step-{step:06d}"


def list_checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted write are ignored)."""
    folder = checkpoints_dir(out)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _NAME.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def save_checkpoint(out: Path, step: int, model, optimizer, state: TrainerState, keep: int) -> Path:
    target = checkpoint_path(out, step)
    if target.exists():  # the same step saved twice (e.g. an epoch end that is also the budget end)
        return target
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        torch.save({"torch": torch.get_rng_state(), "python": random.getstate()}, tmp / RNG_FILE)
        state.write(tmp)
    for old in list_checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_state(checkpoint: Path) -> TrainerState:
    return TrainerState.read(checkpoint)


def restore_optimizer_and_rng(checkpoint: Path, optimizer) -> None:
    optimizer.load_state_dict(torch.load(checkpoint / OPTIMIZER_FILE, weights_only=True))
    rng = torch.load(checkpoint / RNG_FILE, weights_only=False)  # our own file: python's RNG state is a tuple
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
