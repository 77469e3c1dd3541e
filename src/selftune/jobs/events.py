"""Job events as the hosted service words them; written in the same transaction as the change they report."""

from __future__ import annotations

from sqlalchemy.orm import Session

from selftune.store.tables import EventRow, JobRow, new_id, now


def add_event(session: Session, job: JobRow, message: str, level: str = "info", type: str = "message",
              data: dict | None = None, created_at: int | None = None) -> None:
    session.add(EventRow(id=new_id("ftevent-"), job_id=job.id, org=job.org, created_at=created_at or now(),
                         level=level, message=message, type=type, data=data or {}))
