"""Batches: create one from an uploaded ``batch`` file, read, list and cancel them.

The answers are a :class:`~selftune.api.batches.runner.BatchRunner`'s work, in the serving process; this
service only records what a client asks, each change one transaction, so a runner (this process's or
another's) sees it at its next look.
"""

from __future__ import annotations

from sqlalchemy import select

from selftune.api.batches.protocol import (
    COMPLETION_WINDOWS,
    ENDPOINTS,
    ENTERED_AT,
    HOSTED_ENDPOINTS,
    MAX_INPUT_BYTES,
    Batch,
    BatchCreateRequest,
    BatchError,
    BatchRequestCounts,
    BatchStatus,
    BatchUsage,
    Errors,
)
from selftune.api.errors import bad_request, not_found
from selftune.api.files.protocol import expiry_seconds
from selftune.api.metadata import check_metadata
from selftune.api.owned import owned
from selftune.api.pagination import page
from selftune.store.db import Database
from selftune.store.tables import BatchRow, FileRow, new_id, now


def enter(row: BatchRow, status: BatchStatus) -> None:
    """``row`` moves to ``status``, stamped with the time the Batch object shows for it."""
    row.status = status
    if status in ENTERED_AT:
        setattr(row, ENTERED_AT[status], now())


class BatchService:
    def __init__(self, *, db: Database):
        self.db = db

    def create(self, org: str, request: BatchCreateRequest) -> Batch:
        if request.endpoint in HOSTED_ENDPOINTS:
            raise bad_request(f"Batches of {request.endpoint} are not supported by selftune: it serves "
                              f"{' and '.join(ENDPOINTS)}.", param="endpoint", code="unsupported_value")
        if request.endpoint not in ENDPOINTS:
            raise bad_request(f"Invalid endpoint {request.endpoint!r}: expected one of {', '.join(ENDPOINTS)}.",
                              param="endpoint", code="invalid_value")
        if request.completion_window not in COMPLETION_WINDOWS:
            raise bad_request(f"Invalid completion_window {request.completion_window!r}: expected "
                              f"{', '.join(COMPLETION_WINDOWS)}.", param="completion_window", code="invalid_value")
        check_metadata(request.metadata)
        expires_after = expiry_seconds(request.output_expires_after and request.output_expires_after.seconds,
                                       "output_expires_after.seconds")
        with self.db.transaction() as session:
            source = session.scalar(select(FileRow).where(FileRow.id == request.input_file_id, FileRow.org == org))
            if source is None:
                raise not_found("file", request.input_file_id, param="input_file_id")
            if source.purpose != "batch":
                raise bad_request(f"File {source.id} has purpose {source.purpose!r}; a batch's input file is "
                                  "uploaded with purpose 'batch'.", param="input_file_id", code="invalid_file")
            if source.bytes > MAX_INPUT_BYTES:
                raise bad_request(f"A batch's input file may hold at most {MAX_INPUT_BYTES // 1024**2} MB; "
                                  f"{source.id} has {source.bytes:,} bytes.", param="input_file_id",
                                  code="file_too_large")
            created = now()
            row = BatchRow(id=new_id("batch_"), org=org, endpoint=request.endpoint, input_file_id=source.id,
                           completion_window=request.completion_window, status=BatchStatus.VALIDATING,
                           metadata_=request.metadata or None, output_expires_after=expires_after,
                           created_at=created, expires_at=created + COMPLETION_WINDOWS[request.completion_window],
                           total=0, completed=0, failed=0, input_tokens=0, output_tokens=0)
            session.add(row)
            session.flush()
            return to_batch(row)

    def retrieve(self, org: str, batch_id: str) -> Batch:
        with self.db.transaction() as session:
            return to_batch(self._row(session, org, batch_id))

    def list(self, org: str, after: str | None, limit: int) -> tuple[list[Batch], bool]:
        with self.db.transaction() as session:
            rows, more = page(session, select(BatchRow).where(BatchRow.org == org), BatchRow, after, limit,
                              kind="batch")
            return [to_batch(r) for r in rows], more

    def cancel(self, org: str, batch_id: str) -> Batch:
        """``cancelling`` at once; the runner stops its requests and makes it ``cancelled`` (with the answers
        so far in the output file). Cancelling a batch that is cancelling already changes nothing."""
        with self.db.transaction() as session:
            row = self._row(session, org, batch_id, lock=True)
            if row.status == BatchStatus.VALIDATING and row.runner is None:  # no request read yet: nothing to stop
                enter(row, BatchStatus.CANCELLING)
                enter(row, BatchStatus.CANCELLED)
            elif row.status in (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS):
                enter(row, BatchStatus.CANCELLING)
            elif row.status != BatchStatus.CANCELLING:
                raise bad_request(f"Batch {batch_id} is {row.status}; only a validating or in-progress batch can be "
                                  "cancelled.", param="batch_id", code="batch_not_active")
            return to_batch(row)

    @staticmethod
    def _row(session, org: str, batch_id: str, lock: bool = False) -> BatchRow:
        return owned(session, BatchRow, org, batch_id, "batch", "batch_id", lock=lock)


def to_batch(row: BatchRow) -> Batch:
    times = {field: getattr(row, field) for field in ENTERED_AT.values()}
    return Batch(id=row.id, endpoint=row.endpoint, input_file_id=row.input_file_id,
                 completion_window=row.completion_window, status=row.status, created_at=row.created_at,
                 expires_at=row.expires_at, output_file_id=row.output_file_id, error_file_id=row.error_file_id,
                 errors=Errors(data=[BatchError(**e) for e in row.errors]) if row.errors else None,
                 request_counts=BatchRequestCounts(completed=row.completed, failed=row.failed, total=row.total),
                 usage=BatchUsage(input_tokens=row.input_tokens, output_tokens=row.output_tokens,
                                  total_tokens=row.input_tokens + row.output_tokens),
                 metadata=row.metadata_, model=row.model, **times)

