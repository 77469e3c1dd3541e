"""The training child: ``python -m selftune.jobs.child JOB_FOLDER``.

Runs one job's training with the worker's config and exits with a code the worker understands
(see :mod:`selftune.jobs.workspace`). It stops at a checkpoint when the worker asks (a ``stop``
file) or when the worker itself dies (``kill -9``): then the next worker resumes it from that
checkpoint. A lock on the folder makes a new child wait until an orphaned one has finished
saving, so two processes never write one job's checkpoints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from selftune.jobs.workspace import (
    EXIT_BAD_INPUT,
    EXIT_DISK_FULL,
    EXIT_DONE,
    EXIT_INTERNAL,
    EXIT_STOPPED,
    Workspace,
    disk_full_message,
)
from selftune.store.atomic import atomic_write, is_disk_full

PARENT_CHECK_SECONDS = 0.5


class StopWatch:
    """should_stop for the trainer: a stop request, or the worker that started us is gone."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.parent = os.getppid()
        self.orphaned = threading.Event()
        threading.Thread(target=self._watch_parent, daemon=True).start()

    def _watch_parent(self) -> None:
        while os.getppid() == self.parent:
            time.sleep(PARENT_CHECK_SECONDS)
        self.orphaned.set()

    def __call__(self) -> bool:
        return self.orphaned.is_set() or self.workspace.stop_request.exists()


def main(folder: str) -> int:
    workspace = Workspace(Path(folder))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = StopWatch(workspace)
    with open(workspace.lock, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel however this process ends
        if stop():
            return EXIT_STOPPED
        return _train(workspace, stop)


def _train(workspace: Workspace, stop: StopWatch) -> int:
    from selftune.errors import SelftuneError
    from selftune.train import RunStatus, run
    from selftune.train.checkpoint import list_checkpoints, step_of
    from selftune.train.dataset import InvalidTrainingFile

    try:
        config = workspace.read_config()  # built and checked by the worker
        config = config.model_copy(update={"resume": bool(list_checkpoints(config.out))})
        result = run(config, should_stop=stop)
    except InvalidTrainingFile as exc:
        files = {config.train_file: "training_file", config.valid_file: "validation_file"}
        _write_error(workspace, "invalid_training_file", str(exc), files.get(exc.path))
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - reported to the worker, with the traceback in child.log
        if is_disk_full(exc):  # before SelftuneError: DiskFull is one, but the data is not at fault
            traceback.print_exc()
            kept = list_checkpoints(config.out)
            with contextlib.suppress(OSError):  # the disk is full: the exit code alone says it then
                _write_error(workspace, "disk_full", disk_full_message(step_of(kept[-1]) if kept else 0), None)
            return EXIT_DISK_FULL
        if isinstance(exc, SelftuneError):
            _write_error(workspace, "invalid_request", str(exc), None)
            return EXIT_BAD_INPUT
        traceback.print_exc()
        _write_error(workspace, "internal_error", f"training failed: {type(exc).__name__}: {exc}", None)
        return EXIT_INTERNAL
    return EXIT_STOPPED if result.status == RunStatus.STOPPED else EXIT_DONE


def _write_error(workspace: Workspace, code: str, message: str, param: str | None) -> None:
    with atomic_write(workspace.error) as f:
        json.dump({"code": code, "message": message, "param": param}, f)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
