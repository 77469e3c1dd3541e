"""Files: store uploads, validate fine-tune files in the background, list, fetch, delete.

A fine-tune file is checked by stage 1 (:func:`selftune.data.check`) on a background thread;
its status goes ``uploaded`` -> ``processed`` (chat or preference format recorded) or ``error``
with the first problems, each naming its line, in ``status_details``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from selftune.api.errors import APIError, bad_request
from selftune.api.files.protocol import PURPOSES, FileDeleted, FileObject
from selftune.api.owned import owned
from selftune.api.pagination import page
from selftune.store.blobs import BlobStore, TooLarge
from selftune.store.db import Database
from selftune.store.tables import FileRow, new_id, now

log = logging.getLogger(__name__)
PROBLEMS_IN_DETAILS = 5
MAX_FILENAME = 512


class FileService:
    def __init__(self, *, db: Database, blobs: BlobStore, max_upload_bytes: int):
        self.db, self.blobs, self.max_upload_bytes = db, blobs, max_upload_bytes
        self._validator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="validate-file")

    # ---- create ------------------------------------------------------------------------------
    def create(self, org: str, filename: str, purpose: str, source: BinaryIO,
               expires_after: int | None = None, limit: int | None = None) -> FileObject:
        """``limit``: the largest file accepted, when not the server's upload limit (a completed upload's)."""
        limit = limit or self.max_upload_bytes
        if purpose not in PURPOSES:
            raise bad_request(f"Invalid purpose {purpose!r}: expected one of {', '.join(PURPOSES)}.",
                              param="purpose")
        file_id = new_id("file-")
        try:
            size, sha256 = self.blobs.put(file_id, source, limit)
        except TooLarge:
            raise APIError(413, f"File is larger than the limit of {limit:,} bytes.",
                           param="file", code="file_too_large") from None
        if size == 0:
            self.blobs.delete(file_id)
            raise bad_request("The file is empty.", param="file", code="empty_file")
        created = now()
        row = FileRow(id=file_id, org=org, filename=_clean_filename(filename), purpose=purpose, bytes=size,
                      sha256=sha256, created_at=created, status="uploaded" if purpose == "fine-tune" else "processed",
                      expires_at=created + expires_after if expires_after else None)
        try:
            with self.db.transaction() as session:
                session.add(row)
        except BaseException:
            self.blobs.delete(file_id)  # no bytes kept for a file the API never created
            raise
        if purpose == "fine-tune":
            self._validator.submit(self.validate, file_id)
        return to_object(row)

    # ---- validation --------------------------------------------------------------------------
    def validate(self, file_id: str) -> None:
        """Run stage 1's check on a stored upload and record the outcome (on the validator thread)."""
        from selftune.data import check

        try:
            report = check(self.blobs.path(file_id), max_problems=PROBLEMS_IN_DETAILS)
            if report.valid:
                status, details, fmt = "processed", None, report.purpose
            else:
                status, details, fmt = "error", _details(report), report.purpose
        except Exception as exc:  # noqa: BLE001 - a file we can't read is the file's error, not the server's
            log.exception("validating %s", file_id)
            status, details, fmt = "error", f"The file could not be read: {exc}", None
        with self.db.transaction() as session:
            row = session.scalar(select(FileRow).where(FileRow.id == file_id))
            if row is not None:
                row.status, row.status_details, row.format = status, details, fmt
                row.examples = report.valid_examples if status == "processed" else None

    def validate_pending(self) -> None:
        """After a restart: validate uploads the previous process accepted but never finished checking."""
        with self.db.transaction() as session:
            pending = list(session.scalars(select(FileRow.id).where(FileRow.status == "uploaded")))
        for file_id in pending:
            self._validator.submit(self.validate, file_id)

    def shutdown(self) -> None:
        self._validator.shutdown(wait=False, cancel_futures=True)

    # ---- read / delete -----------------------------------------------------------------------
    def retrieve(self, org: str, file_id: str) -> FileObject:
        with self.db.transaction() as session:
            return to_object(self._row(session, org, file_id))

    def content_path(self, org: str, file_id: str) -> tuple[Path, str]:
        with self.db.transaction() as session:
            row = self._row(session, org, file_id)
            return self.blobs.path(row.id), row.filename

    def list(self, org: str, purpose: str | None, after: str | None, limit: int, order: str) -> tuple[list, bool]:
        with self.db.transaction() as session:
            query = select(FileRow).where(FileRow.org == org)
            if purpose:
                query = query.where(FileRow.purpose == purpose)
            rows, more = page(session, query, FileRow, after, limit, newest_first=order == "desc", kind="file")
            return [to_object(r) for r in rows], more

    def delete(self, org: str, file_id: str) -> FileDeleted:
        with self.db.transaction() as session:
            row = self._row(session, org, file_id)
            session.delete(row)
        self.blobs.delete(file_id)  # after the commit: a crash in between leaves bytes, never a dangling row
        return FileDeleted(id=file_id, deleted=True)

    @staticmethod
    def _row(session, org: str, file_id: str) -> FileRow:
        return owned(session, FileRow, org, file_id, "file")


def to_object(row: FileRow) -> FileObject:
    return FileObject(id=row.id, bytes=row.bytes, created_at=row.created_at, filename=row.filename,
                      purpose=row.purpose, status=row.status, expires_at=row.expires_at,
                      status_details=row.status_details)


def _details(report) -> str:
    """The first problems, one per line, each with its line number and field (as ``selftune data check``)."""
    lines = [_problem_line(problem) for problem in report.errors[:PROBLEMS_IN_DETAILS]]
    hidden = report.error_count - len(lines)
    if hidden > 0:
        lines.append(f"... and {hidden:,} more error(s)")
    return "Invalid file format.\n" + "\n".join(lines)


def _problem_line(problem) -> str:
    where = f"Line {problem.line}: " if problem.line is not None else ""
    field = f"{problem.field}: " if problem.field else ""
    return f"{where}{field}{problem.code}: {problem.message}"


def _clean_filename(name: str) -> str:
    """Only the last path part, printable, bounded: a filename is shown, never used as a path."""
    name = (name or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:MAX_FILENAME]
    return name or "upload"
