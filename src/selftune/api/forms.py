"""Reading a multipart body, where a full disk is the same 507 as everywhere else.

Starlette spools each uploaded file to a temporary file (1 MB in memory, then disk) before a route sees
it, outside selftune's atomic writer; a disk that fills there raised a bare ``OSError`` (a 500).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import Request
from starlette.datastructures import FormData

from selftune.store.atomic import DiskFull, is_disk_full


async def read_form(request: Request, **limits) -> FormData:
    """``request.form(**limits)``; a full disk while spooling is :class:`DiskFull` (the 507 handler's)."""
    try:
        return await request.form(**limits)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(Path(tempfile.gettempdir())) from None
        raise
