"""Stored responses: ``store`` (true unless the request says false, as hosted) keeps a response, its
input items and the conversation before it, for the caller's organisation: to retrieve, to list its
input items, to delete, and to continue with ``previous_response_id``."""

from __future__ import annotations

from sqlalchemy import select

from selftune.api.errors import bad_request, not_found
from selftune.api.owned import owned
from selftune.api.responses.protocol import Response, ResponseDeleted
from selftune.store.db import Database
from selftune.store.tables import ResponseRow

KIND = "response"


class StoredResponses:
    def __init__(self, db: Database):
        self.db = db

    def save(self, org: str, response: Response, history: list[dict], input_items: list[dict]) -> None:
        with self.db.transaction() as session:
            session.add(ResponseRow(id=response.id, org=org, model=response.model, created_at=response.created_at,
                                    history=history, input_items=input_items,
                                    response=response.model_dump(mode="json")))

    def conversation(self, org: str, response_id: str) -> list[dict]:
        """Every item of a stored response's conversation, oldest first: what came before it, its input
        and its output (not its ``instructions``: the hosted API does not carry them over)."""
        with self.db.transaction() as session:
            row = session.scalar(select(ResponseRow).where(ResponseRow.id == response_id, ResponseRow.org == org))
            if row is None:
                raise bad_request(f"Previous response with id '{response_id}' not found.",
                                  param="previous_response_id", code="previous_response_not_found")
            return [*row.history, *row.input_items, *row.response["output"]]

    def retrieve(self, org: str, response_id: str) -> Response:
        with self.db.transaction() as session:
            return Response.model_validate(self._row(session, org, response_id).response)

    def input_items(self, org: str, response_id: str, after: str | None, limit: int,
                    order: str) -> tuple[list[dict], bool]:
        if order not in ("asc", "desc"):
            raise bad_request(f"Invalid value for 'order': {order!r}; use 'asc' or 'desc'.", param="order")
        with self.db.transaction() as session:
            items = list(self._row(session, org, response_id).input_items)
        if order == "desc":
            items.reverse()
        if after:
            ids = [item["id"] for item in items]
            if after not in ids:
                raise not_found("input item", after, param="after")
            items = items[ids.index(after) + 1:]
        return items[:limit], len(items) > limit

    def delete(self, org: str, response_id: str) -> ResponseDeleted:
        with self.db.transaction() as session:
            session.delete(self._row(session, org, response_id))
        return ResponseDeleted(id=response_id, deleted=True)

    @staticmethod
    def _row(session, org: str, response_id: str) -> ResponseRow:
        return owned(session, ResponseRow, org, response_id, KIND, "response_id")
