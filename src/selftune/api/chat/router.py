"""Routes of ``/v1/chat/completions``: JSON for a whole answer, server-sent events when streaming; and
the stored completions (``store: true``): list, read, messages, update metadata, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from selftune.api.auth import Org
from selftune.api.chat.protocol import (
    ChatCompletion,
    ChatCompletionDeleted,
    ChatCompletionRequest,
    StoredChatCompletion,
    StoredMessage,
)
from selftune.api.chat.service import ChatService
from selftune.api.chat.stored import StoredCompletions
from selftune.api.errors import error_responses
from selftune.api.metadata import METADATA_QUERY, METADATA_SCHEMA, check_metadata, metadata_filter
from selftune.api.pagination import Limit, Order, Page, list_body
from selftune.api.streaming import EVENT_STREAM

router = APIRouter(prefix="/v1/chat", tags=["chat"])


def chat(request: Request) -> ChatService:
    return request.app.state.chat


def stored(request: Request) -> StoredCompletions:
    return request.app.state.chat.stored


Chat = Annotated[ChatService, Depends(chat)]
Stored = Annotated[StoredCompletions, Depends(stored)]


def _stored_links(completion_id: str) -> dict:
    """OpenAPI links from an answer holding a stored completion's id to every operation on it."""
    operations = ("retrieve_stored", "update_stored", "delete_stored", "stored_messages")
    return {"links": {op: {"operationId": op, "parameters": {"completion_id": completion_id}} for op in operations}}


class MetadataUpdate(BaseModel):
    metadata: dict[str, str] | None = Field(json_schema_extra=METADATA_SCHEMA)


@router.post("/completions", response_model=ChatCompletion, responses={**error_responses(404, 429), 200: {
    "description": "The completion; with `stream: true`, server-sent events of chat.completion.chunk objects.",
    "content": EVENT_STREAM,
    **_stored_links("$response.body#/id")}})
async def create_chat_completion(body: ChatCompletionRequest, org: Org, service: Chat):
    if body.stream:
        events = await service.stream(org, body)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return await service.complete(org, body)


@router.get("/completions", response_model=Page[StoredChatCompletion], openapi_extra=METADATA_QUERY,
            responses={**error_responses(404), 200: _stored_links("$response.body#/data/0/id")})
def list_stored(request: Request, org: Org, service: Stored, model: str | None = None, after: str | None = None,
                limit: Limit = 20, order: Order = "asc"):
    data, more = service.list(org, model=model, metadata=metadata_filter(request), after=after, limit=limit,
                              order=order)
    return list_body([d.model_dump() for d in data], more)


@router.get("/completions/{completion_id}", response_model=StoredChatCompletion, responses=error_responses(404))
def retrieve_stored(completion_id: str, org: Org, service: Stored):
    return service.retrieve(org, completion_id)


@router.post("/completions/{completion_id}", response_model=StoredChatCompletion,
             responses=error_responses(404))
def update_stored(completion_id: str, body: MetadataUpdate, org: Org, service: Stored):
    return service.update(org, completion_id, check_metadata(body.metadata))


@router.delete("/completions/{completion_id}", response_model=ChatCompletionDeleted,
               responses=error_responses(404))
def delete_stored(completion_id: str, org: Org, service: Stored):
    return service.delete(org, completion_id)


@router.get("/completions/{completion_id}/messages", response_model=Page[StoredMessage],
            responses=error_responses(404))
def stored_messages(completion_id: str, org: Org, service: Stored, after: str | None = None, limit: Limit = 20,
                    order: Order = "asc"):
    data, more = service.messages(org, completion_id, after, limit, order)
    return list_body([d.model_dump() for d in data], more)
