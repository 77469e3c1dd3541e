"""Uploads: a large file sent in parts, then completed into an ordinary File.

Each part streams to its own blob (the request's spooled body is copied in 1 MB chunks, never held
whole), so a server's memory stays flat however large the upload. Completing streams the parts, in the
order the client names, through :meth:`FileService.create` — the same store path and the same
background validation as ``POST /v1/files`` — computing the md5 on the way and refusing the file (before
any row exists) when it differs from the one the client sent. The parts' blobs go once the upload ends.

Limits are the hosted ones: an upload of up to 8 GB in parts of up to 64 MB, completed within an hour.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from sqlalchemy import func, select

from selftune.api.errors import APIError, bad_request
from selftune.api.files.protocol import PURPOSES, FileObject, expiry_seconds
from selftune.api.files.service import FileService
from selftune.api.owned import owned
from selftune.api.uploads.protocol import (
    MAX_PART_BYTES,
    MAX_UPLOAD_BYTES,
    Upload,
    UploadCompleteRequest,
    UploadCreateRequest,
    UploadPart,
)
from selftune.store.blobs import CHUNK, TooLarge
from selftune.store.tables import UploadPartRow, UploadRow, new_id, now

log = logging.getLogger(__name__)
LIFETIME_SECONDS = 3600
COMPLETING = "completing"  # internal: a completion is copying the parts (shown as "pending")


class UploadService:
    def __init__(self, *, files: FileService):
        self.files, self.db, self.blobs = files, files.db, files.blobs

    # ---- create ------------------------------------------------------------------------------
    def create(self, org: str, request: UploadCreateRequest) -> Upload:
        if request.purpose not in PURPOSES:
            raise bad_request(f"Invalid purpose {request.purpose!r}: expected one of {', '.join(PURPOSES)}.",
                              param="purpose")
        if not 1 <= request.bytes <= MAX_UPLOAD_BYTES:
            raise bad_request(f"bytes must be between 1 and {MAX_UPLOAD_BYTES:,} (8 GB).", param="bytes")
        if not request.filename.strip():
            raise bad_request("filename must not be empty.", param="filename")
        if not request.mime_type.strip():
            raise bad_request("mime_type must not be empty.", param="mime_type")
        expires_after = expiry_seconds(request.expires_after and request.expires_after.seconds,
                                       "expires_after.seconds")
        self.expire_stale()
        created = now()
        row = UploadRow(id=new_id("upload_"), org=org, filename=request.filename[:512], purpose=request.purpose,
                        mime_type=request.mime_type[:128], bytes=request.bytes, created_at=created,
                        expires_at=created + LIFETIME_SECONDS, status="pending", file_expires_after=expires_after)
        with self.db.transaction() as session:
            session.add(row)
            return to_upload(row)

    # ---- parts -------------------------------------------------------------------------------
    def check_pending(self, org: str, upload_id: str) -> None:
        """404 or 400 before a part's body is read, when the upload can't take it."""
        with self.db.transaction() as session:
            self._pending(session, org, upload_id)

    def add_part(self, org: str, upload_id: str, source) -> UploadPart:
        """Stream ``source`` (a file object) into the part's blob; the upload's row is checked before the
        copy (a cancelled upload gets no bytes) and again after it (the parts must fit the declared size)."""
        self.check_pending(org, upload_id)
        part_id = new_id("part_")
        try:
            size, _ = self.blobs.put(part_id, source, MAX_PART_BYTES)
        except TooLarge:
            raise APIError(413, f"A part may hold at most {MAX_PART_BYTES:,} bytes (64 MB).", param="data",
                           code="part_too_large") from None
        try:
            if size == 0:
                raise bad_request("The part is empty.", param="data", code="empty_part")
            with self.db.transaction() as session:
                upload = self._pending(session, org, upload_id, lock=True)
                held = session.scalar(select(func.coalesce(func.sum(UploadPartRow.bytes), 0))
                                      .where(UploadPartRow.upload_id == upload_id))
                if held + size > upload.bytes:
                    raise bad_request(f"The parts would hold {held + size:,} bytes, more than the {upload.bytes:,} "
                                      "the upload was created for.", param="data", code="upload_too_large")
                part = UploadPartRow(id=part_id, upload_id=upload_id, org=org, created_at=now(), bytes=size)
                session.add(part)
                return UploadPart(id=part.id, created_at=part.created_at, upload_id=upload_id)
        except BaseException:
            self.blobs.delete(part_id)  # no bytes kept for a part the API never created
            raise

    # ---- complete / cancel -------------------------------------------------------------------
    def complete(self, org: str, upload_id: str, request: UploadCompleteRequest) -> Upload:
        with self.db.transaction() as session:
            upload = self._pending(session, org, upload_id, lock=True)
            self._check_parts(session, upload, request.part_ids)
            upload.status = COMPLETING  # a second complete (or a cancel) meanwhile is refused
            filename, purpose, expires_after = upload.filename, upload.purpose, upload.file_expires_after
        try:
            source = _Concatenation([self.blobs.path(p) for p in request.part_ids], request.md5)
            try:
                file = self.files.create(org, filename, purpose, source, expires_after, limit=MAX_UPLOAD_BYTES)
            finally:
                source.close()
        except BaseException:
            with self.db.transaction() as session:
                self._row(session, org, upload_id, lock=True).status = "pending"  # the client may try again
            raise
        with self.db.transaction() as session:
            upload = self._row(session, org, upload_id, lock=True)
            upload.status, upload.file_id = "completed", file.id
            answer = to_upload(upload, file)
        self._delete_parts(upload_id)
        return answer

    def cancel(self, org: str, upload_id: str) -> Upload:
        with self.db.transaction() as session:
            upload = self._pending(session, org, upload_id, lock=True)
            upload.status = "cancelled"
            answer = to_upload(upload)
        self._delete_parts(upload_id)
        return answer

    def expire_stale(self) -> None:
        """Uploads not completed within their hour are ``expired`` and their parts' bytes deleted (a
        completion still copying an hour later was cut short by a restart)."""
        moment = now()
        with self.db.transaction() as session:
            stale = list(session.scalars(select(UploadRow).where(
                UploadRow.status == "pending", UploadRow.expires_at <= moment).limit(100)))
            stale += session.scalars(select(UploadRow).where(
                UploadRow.status == COMPLETING, UploadRow.expires_at <= moment - LIFETIME_SECONDS).limit(100))
            for upload in stale:
                upload.status = "expired"
            ids = [u.id for u in stale]
        for upload_id in ids:
            self._delete_parts(upload_id)

    # ---- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _check_parts(session, upload: UploadRow, part_ids: list[str]) -> None:
        if not part_ids:
            raise bad_request("part_ids must name at least one part.", param="part_ids")
        if len(set(part_ids)) != len(part_ids):
            raise bad_request("part_ids names a part twice.", param="part_ids")
        sizes = dict(session.execute(select(UploadPartRow.id, UploadPartRow.bytes).where(
            UploadPartRow.upload_id == upload.id)).all())
        unknown = next((p for p in part_ids if p not in sizes), None)
        if unknown is not None:
            raise bad_request(f"No part {unknown!r} in upload {upload.id}.", param="part_ids", code="part_not_found")
        total = sum(sizes[p] for p in part_ids)
        if total != upload.bytes:
            raise bad_request(f"The parts hold {total:,} bytes; the upload was created for {upload.bytes:,}.",
                              param="part_ids", code="upload_size_mismatch")

    def _pending(self, session, org: str, upload_id: str, lock: bool = False) -> UploadRow:
        upload = self._row(session, org, upload_id, lock)
        if upload.status == "pending" and upload.expires_at <= now():
            upload.status = "expired"  # its parts go with the next sweep
        if upload.status != "pending":
            shown = "being completed" if upload.status == COMPLETING else upload.status
            raise bad_request(f"Upload {upload_id} is {shown}; only a pending upload takes parts, completes or "
                              "cancels" + (" (an upload expires an hour after it was created)."
                                           if upload.status == "expired" else "."),
                              param="upload_id", code="upload_not_pending")
        return upload

    @staticmethod
    def _row(session, org: str, upload_id: str, lock: bool = False) -> UploadRow:
        return owned(session, UploadRow, org, upload_id, "upload", "upload_id", lock=lock)

    def _delete_parts(self, upload_id: str) -> None:
        with self.db.transaction() as session:
            part_ids = list(session.scalars(select(UploadPartRow.id).where(UploadPartRow.upload_id == upload_id)))
        for part_id in part_ids:
            self.blobs.delete(part_id)


def to_upload(row: UploadRow, file: FileObject | None = None) -> Upload:
    return Upload(id=row.id, bytes=row.bytes, created_at=row.created_at, expires_at=row.expires_at,
                  filename=row.filename, purpose=row.purpose,
                  status="pending" if row.status == COMPLETING else row.status, file=file)


class _Concatenation:
    """The parts read one after another as one file object, md5 computed on the way; at the end, a
    differing md5 raises (inside the blob store's atomic write, so no file is kept). Written by hand:
    the standard library chains iterables, not file objects."""

    def __init__(self, paths: list[Path], md5: str | None):
        self.paths, self.expected = list(paths), (md5 or "").strip().lower() or None
        self.digest, self.current = hashlib.md5(usedforsecurity=False), None

    def read(self, size: int = CHUNK) -> bytes:
        while True:
            if self.current is None:
                if not self.paths:
                    self._check()
                    return b""
                self.current = open(self.paths.pop(0), "rb")  # noqa: SIM115 - closed at its end below
            chunk = self.current.read(size)
            if chunk:
                self.digest.update(chunk)
                return chunk
            self.close()

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None

    def _check(self) -> None:
        if self.expected is not None and self.digest.hexdigest() != self.expected:
            raise bad_request(f"The md5 of the parts, in the order given, is {self.digest.hexdigest()}, not "
                              f"{self.expected}. No file was created; the upload is still pending.",
                              param="md5", code="md5_mismatch")
