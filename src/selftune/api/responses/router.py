"""Routes of ``/v1/responses``: create (JSON, or server-sent events when streaming), retrieve, delete, and
the input items of a stored response."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from selftune.api.auth import Org
from selftune.api.errors import bad_request, error_responses
from selftune.api.pagination import Limit, Order, Page, list_body
from selftune.api.responses.protocol import Item, Response, ResponseDeleted, ResponseRequest
from selftune.api.responses.service import ResponseService
from selftune.api.responses.stored import StoredResponses
from selftune.api.streaming import EVENT_STREAM

router = APIRouter(prefix="/v1/responses", tags=["responses"])


def responses(request: Request) -> ResponseService:
    return request.app.state.responses


def stored(request: Request) -> StoredResponses:
    return request.app.state.responses.stored


Responses = Annotated[ResponseService, Depends(responses)]
Stored = Annotated[StoredResponses, Depends(stored)]


def _links(response_id: str) -> dict:
    """OpenAPI links from an answer holding a stored response's id to every operation on it."""
    operations = ("retrieve_response", "delete_response", "list_input_items")
    return {"links": {op: {"operationId": op, "parameters": {"response_id": response_id}} for op in operations}}


@router.post("", response_model=Response, responses={**error_responses(404), 200: {
    "description": "The response; with `stream: true`, server-sent events (`response.created` ... "
                   "`response.completed`).",
    "content": EVENT_STREAM, **_links("$response.body#/id")}})
async def create_response(body: ResponseRequest, org: Org, service: Responses):
    if body.stream:
        events = await service.stream(org, body)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return await service.create(org, body)


@router.get("/{response_id}", response_model=Response, responses=error_responses(404))
def retrieve_response(response_id: str, org: Org, service: Stored):
    return service.retrieve(org, response_id)


@router.delete("/{response_id}", response_model=ResponseDeleted, responses=error_responses(404))
def delete_response(response_id: str, org: Org, service: Stored):
    return service.delete(org, response_id)


@router.get("/{response_id}/input_items", response_model=Page[Item], responses=error_responses(404))
def list_input_items(request: Request, response_id: str, org: Org, service: Stored, after: str | None = None,
                     limit: Limit = 20, order: Order = "asc", before: str | None = None,
                     include: Annotated[list[str] | None, Query()] = None):
    # declared so that they are refused by name, never ignored (the SDK sends include as include[]=...)
    for name in ("before", "include"):
        if any(key.split("[")[0] == name for key in request.query_params):
            raise bad_request(f"{name} is not supported yet by selftune.", param=name, code="unsupported_parameter")
    data, more = service.input_items(org, response_id, after, limit, order)
    return list_body(data, more)
