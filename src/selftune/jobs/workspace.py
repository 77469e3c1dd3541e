"""A job's folder: what the worker hands the training child and what the child leaves behind.

``SELFTUNE_HOME/jobs/<job-id>/`` holds ``config.json`` (a TrainConfig), ``data/`` (the job's own
copies of its files, so deleting an upload can't break a queued or resuming job), ``events.jsonl``
(the child's progress, relayed into the database), ``out/`` (checkpoints, then the model),
``control/`` (a ``stop`` request), ``error.json`` (why a child failed) and ``child.log``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from selftune.store.atomic import atomic_write
from selftune.train.config import TrainConfig
from selftune.train.events import TRAINING_JSON

EXIT_DONE = 0
EXIT_BAD_INPUT = 1  # the data or the settings can't be trained on: error.json says why
EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped at a checkpoint on request (pause, shutdown); resume continues
EXIT_INTERNAL = 70
EXIT_DISK_FULL = 74  # EX_IOERR: no space left for a checkpoint or the results; the last checkpoint is intact


def disk_full_message(step: int | None) -> str:
    """Why a job paused for want of disk space: ``step`` is its intact checkpoint's (0: none yet; None:
    unknown, when the child could not even write error.json)."""
    kept = ("the last checkpoint is intact" if step is None else f"its checkpoint at step {step} is intact"
            if step else "it had no checkpoint yet")
    return f"No space left on the server's disk while saving the job's progress ({kept}). Free some space, then " \
           "resume the job."


class Workspace:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    config = property(lambda self: self.folder / "config.json")
    events = property(lambda self: self.folder / "events.jsonl")
    out = property(lambda self: self.folder / "out")
    data = property(lambda self: self.folder / "data")
    stop_request = property(lambda self: self.folder / "control" / "stop")
    error = property(lambda self: self.folder / "error.json")
    log = property(lambda self: self.folder / "child.log")
    lock = property(lambda self: self.folder / "child.lock")

    def training_complete(self) -> bool:
        return (self.out / TRAINING_JSON).is_file()

    def training_record(self) -> dict:
        return json.loads((self.out / TRAINING_JSON).read_text())

    def add_data(self, name: str, source: Path) -> Path:
        """The job's own copy of an uploaded file: a hard link where possible (no bytes copied)."""
        target = self.data / name
        if target.exists():
            return target
        self.data.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        return target

    def write_config(self, config: TrainConfig) -> None:
        with atomic_write(self.config) as f:
            f.write(config.model_dump_json(indent=1))

    def read_config(self) -> TrainConfig:
        return TrainConfig.model_validate_json(self.config.read_bytes())

    def request_stop(self) -> None:
        self.stop_request.parent.mkdir(parents=True, exist_ok=True)
        self.stop_request.touch()

    def prepare_start(self) -> None:
        """Before each child: clear old requests and errors, and cut a half-written last event line
        (left by a child that was killed mid-write) so the next child's lines start clean."""
        self.stop_request.unlink(missing_ok=True)
        self.error.unlink(missing_ok=True)
        if self.events.is_file():
            with open(self.events, "rb+") as f:
                data = f.read()
                end = data.rfind(b"\n") + 1
                if end != len(data):
                    f.truncate(end)

    def read_error(self) -> dict | None:
        try:
            return json.loads(self.error.read_text())
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])
