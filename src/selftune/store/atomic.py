"""Atomic writes: a reader sees the old content or the new, never half of either.

Written by hand because the standard library has the pieces (``os.replace``) but not the
pattern: write beside the target, flush to disk, rename over it, and clean up on failure. A write
that fails for want of space raises :class:`DiskFull`, whoever failed (Python, torch, safetensors).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from selftune.errors import SelftuneError

LOW_SPACE_BYTES = 1 << 20  # a write failing with less than this left on the disk failed for want of space


class DiskFull(SelftuneError, OSError):
    """No space left on the disk (or in the quota) for ``path``: nothing was written there, and what was
    there before is intact. An OSError with errno ENOSPC, so code catching OSError still does."""

    def __init__(self, path: Path):
        super().__init__(errno.ENOSPC, f"No space left on the disk for {path}: nothing was written. Free some "
                                       "space and try again.", str(path))
        self.path = Path(path)

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(exc: BaseException, folder: Path | None = None) -> bool:
    """Whether ``exc`` means the disk is full: ENOSPC/EDQUOT (or torch's and safetensors' wording of it),
    or any failed write with next to nothing left in ``folder``'s filesystem."""
    for cause in (exc, exc.__cause__, exc.__context__):
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(cause, Exception) and any(w in str(cause) for w in ("No space left", "StorageFull")):
            return True
    if folder is None or not isinstance(exc, Exception):
        return False
    try:
        space = os.statvfs(folder)
    except OSError:
        return False
    return space.f_bavail * space.f_frsize < LOW_SPACE_BYTES


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on clean exit it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding, newline=None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        full = is_disk_full(exc, path.parent)  # asked before the cleanup frees the space
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full:
            raise DiskFull(path) from exc
        raise


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on clean exit it is renamed to ``path``.

    ``path`` must not exist yet (callers hold a lock and check first): renaming over a
    non-empty folder is not atomic on any platform.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _fsync_tree(tmp)  # the files' bytes on disk before the rename: a power cut can't leave empty files
        os.rename(tmp, path)
        _fsync(path.parent)
    except BaseException as exc:
        full = is_disk_full(exc, path.parent)  # a DiskFull of a file inside: named after the folder
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise DiskFull(path) from exc
        raise


def _fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            _fsync(Path(root) / name)
        _fsync(Path(root))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
