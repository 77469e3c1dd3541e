"""Build a folder exactly once, even when several processes ask for it at the same moment.

Used for anything expensive and derived (a converted model, a calibration): the first caller
builds it into a temporary folder and renames it into place under a file lock; the others
wait on the lock and then find it built.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from selftune.errors import SelftuneError
from selftune.store.atomic import atomic_directory


def build_once(target: Path, build: Callable[[Path], None], timeout_s: float = 1800) -> Path:
    """Return ``target``, calling ``build(tmp_dir)`` first if it does not exist yet."""
    target = Path(target)
    if target.is_dir():
        return target
    lock_path = target.parent / ".locks" / f"{target.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(lock_path, timeout=timeout_s):
            if not target.is_dir():  # someone else may have built it while we waited
                with atomic_directory(target) as tmp:
                    build(tmp)
    except Timeout:
        raise SelftuneError(
            f"waited {timeout_s:.0f}s for another process to build {target}; "
            f"if no selftune process is running, delete {lock_path} and retry"
        ) from None
    return target
