"""File bytes on disk, keyed by the server's own file id (a user's filename is never part of a path).

An upload streams into a temporary file beside its target and is renamed into place once complete
and within the size limit, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path
from typing import BinaryIO

from selftune.store.atomic import atomic_write

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CHUNK = 1024 * 1024


class TooLarge(Exception):
    """The upload passed the configured size limit; nothing was kept."""


class BlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, file_id: str) -> Path:
        if not _SAFE_ID.match(file_id):  # ids are ours, but a path is only ever built from a checked one
            raise ValueError(f"not a file id: {file_id!r}")
        return self.root / file_id[-2:] / file_id

    def put(self, file_id: str, source: BinaryIO, limit: int) -> tuple[int, str]:
        """Copy ``source`` into the store; returns (bytes, sha256). Raises TooLarge past ``limit``."""
        digest, size = hashlib.sha256(), 0
        with atomic_write(self.path(file_id), "wb") as f:  # TooLarge inside: the temp file is removed
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(size)
                digest.update(chunk)
                f.write(chunk)
        return size, digest.hexdigest()

    def put_file(self, file_id: str, source: Path) -> tuple[int, str]:
        with open(source, "rb") as f:
            return self.put(file_id, f, limit=2**62)

    def delete(self, file_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(file_id).unlink()
