"""Cursor pagination as the hosted list endpoints do it: ``after=<id>``, ``limit``, ``has_more``.

Rows are ordered by their integer ``pk`` (insertion order); ``after`` names the last id of the
previous page. Written by hand because it is four lines of SQLAlchemy, not worth a dependency.
"""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import Session

from selftune.api.errors import not_found

MAX_LIMIT = 100
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]  # a list route's ``limit`` parameter
# a list route's ``order``: checked by its service (its own message); the enum is for the schema
Order = Annotated[str, Query(json_schema_extra={"enum": ["asc", "desc"]})]
Item = TypeVar("Item")


def page(session: Session, query: Select, table, after: str | None, limit: int, newest_first: bool = True,
         kind: str = "object") -> tuple[list, bool]:
    """One page of ``query`` (already filtered by organisation) after the row with id ``after``."""
    if after:
        cursor = session.scalar(query.with_only_columns(table.pk).where(table.id == after))
        if cursor is None:
            raise not_found(kind, after, param="after")
        query = query.where(table.pk < cursor if newest_first else table.pk > cursor)
    query = query.order_by(table.pk.desc() if newest_first else table.pk.asc()).limit(limit + 1)
    rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit


def list_body(data: list, has_more: bool) -> dict:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}



class Page(BaseModel, Generic[Item]):
    """The schema of :func:`list_body`'s answer, for the OpenAPI document (``Page[FileObject]``...)."""

    object: Literal["list"] = "list"
    data: list[Item]
    first_id: str | None
    last_id: str | None
    has_more: bool
