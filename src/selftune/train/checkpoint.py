"""Checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint folder holds the trainable weights (adapter or full model, safetensors), the
optimizer state, the RNG states and ``trainer_state.json`` (a
:class:`~selftune.train.events.TrainerState`: position in the data order, metrics so far). It is
written into a temporary folder, flushed to disk and renamed into place, so a crash mid-write leaves
the previous checkpoint intact; only the newest ``keep`` are kept. A checkpoint damaged anyway (a
disk error, a copy cut short) is found by :func:`problem` before a resume trusts it.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import struct
import zipfile
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


def step_of(checkpoint: Path) -> int:
    return int(_NAME.match(Path(checkpoint).name).group(1))


def problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` can't be resumed from (a file missing, cut short or unreadable), or None.
    Cheap: it reads headers and compares sizes, not the tensors."""
    checkpoint = Path(checkpoint)
    try:
        load_state(checkpoint)
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        return f"{STATE_FILE}: {_first_line(exc)}"
    weights = sorted(checkpoint.glob("*.safetensors"))
    index = checkpoint / "model.safetensors.index.json"
    try:
        shards = set(json.loads(index.read_text())["weight_map"].values()) if index.exists() else set()
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        return f"{index.name}: {_first_line(exc)}"
    missing = sorted(shards - {w.name for w in weights})
    if missing or not weights:
        return f"{missing[0] if missing else 'the weights file'} is missing"
    for path in weights:
        reason = _safetensors_problem(path)
        if reason:
            return f"{path.name}: {reason}"
    for name in (OPTIMIZER_FILE, RNG_FILE):  # torch.save writes a zip: its directory is at the very end
        try:
            zipfile.ZipFile(checkpoint / name).close()
        except (OSError, zipfile.BadZipFile) as exc:
            return f"{name}: {_first_line(exc)}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header with each tensor's byte range, then
    the data: the file must be exactly as long as its header says."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"cut short ({size} bytes)"
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            return f"cut short ({size:,} bytes, the header alone needs {length + 8:,})"
        try:
            header = json.loads(f.read(length))
        except ValueError:
            return "its header is not readable"
    ends = [t["data_offsets"][1] for name, t in header.items() if name != "__metadata__"]
    expected = 8 + length + max(ends, default=0)
    if size != expected:
        return f"cut short ({size:,} bytes of {expected:,})" if size < expected else f"{size:,} bytes, not {expected:,}"
    return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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
