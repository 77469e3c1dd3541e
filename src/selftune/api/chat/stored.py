"""Stored completions: ``store: true`` keeps a chat completion (request and answer) for the caller's
organisation, to list, filter by metadata, read, and turn into a training set (``selftune distill
--from-stored``), as the hosted API does."""

from __future__ import annotations

from sqlalchemy import select

from selftune.api.chat.protocol import ChatCompletionDeleted, StoredChatCompletion, StoredMessage
from selftune.api.errors import bad_request, not_found
from selftune.api.owned import owned
from selftune.api.pagination import page
from selftune.models.content import text_of
from selftune.store.db import Database
from selftune.store.tables import CompletionRow

KIND = "chat completion"
# request fields kept beside the answer (the hosted API echoes them on a stored completion)
ECHOED = StoredChatCompletion.omitted_when_none


class StoredCompletions:
    def __init__(self, db: Database):
        self.db = db

    def save(self, org: str, request: dict, completion: dict, metadata: dict | None) -> None:
        with self.db.transaction() as session:
            session.add(CompletionRow(id=completion["id"], org=org, model=completion["model"],
                                      created_at=completion["created"], metadata_=metadata or {},
                                      request=request, response=completion))

    def list(self, org: str, *, model: str | None, metadata: dict[str, str], after: str | None, limit: int,
             order: str) -> tuple[list[StoredChatCompletion], bool]:
        if order not in ("asc", "desc"):
            raise bad_request(f"Invalid value for 'order': {order!r}; use 'asc' or 'desc'.", param="order")
        with self.db.transaction() as session:
            query = select(CompletionRow).where(CompletionRow.org == org)
            if model:
                query = query.where(CompletionRow.model == model)
            for key, value in metadata.items():
                query = query.where(CompletionRow.metadata_[key].as_string() == value)
            rows, more = page(session, query, CompletionRow, after, limit, newest_first=order == "desc", kind=KIND)
            return [to_body(r) for r in rows], more

    def retrieve(self, org: str, completion_id: str) -> StoredChatCompletion:
        with self.db.transaction() as session:
            return to_body(self._row(session, org, completion_id))

    def messages(self, org: str, completion_id: str, after: str | None, limit: int,
                 order: str) -> tuple[list[StoredMessage], bool]:
        """The request's messages, each with an id (``<completion id>-<index>``), paginated."""
        with self.db.transaction() as session:
            row = self._row(session, org, completion_id)
            messages = [_store_message(f"{row.id}-{i}", m) for i, m in enumerate(row.request["messages"])]
        if order == "desc":
            messages.reverse()
        if after:
            ids = [m.id for m in messages]
            if after not in ids:
                raise not_found("message", after, param="after")
            messages = messages[ids.index(after) + 1:]
        return messages[:limit], len(messages) > limit

    def update(self, org: str, completion_id: str, metadata: dict | None) -> StoredChatCompletion:
        with self.db.transaction() as session:
            row = self._row(session, org, completion_id)
            row.metadata_ = metadata or {}
            return to_body(row)

    def delete(self, org: str, completion_id: str) -> ChatCompletionDeleted:
        with self.db.transaction() as session:
            session.delete(self._row(session, org, completion_id))
        return ChatCompletionDeleted(id=completion_id, deleted=True)

    @staticmethod
    def _row(session, org: str, completion_id: str) -> CompletionRow:
        return owned(session, CompletionRow, org, completion_id, KIND, "completion_id")


def to_body(row: CompletionRow) -> StoredChatCompletion:
    """The stored answer as the hosted API shows it: the chat completion, its metadata and the sampling
    settings of the request."""
    echoed = {k: row.request[k] for k in ECHOED if row.request.get(k) is not None}
    return StoredChatCompletion.model_validate({**row.response, "metadata": row.metadata_ or {}, **echoed})


def _store_message(message_id: str, message: dict) -> StoredMessage:
    content = message.get("content")
    return StoredMessage(id=message_id, role=message["role"],
                         content=text_of(content, "\n") if content is not None else None,
                         content_parts=content if isinstance(content, list) else None,
                         name=message.get("name"), tool_calls=message.get("tool_calls"),
                         tool_call_id=message.get("tool_call_id"))
