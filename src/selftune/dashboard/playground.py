"""The playground: one conversation sent to 2-4 models at once (base models, fine-tuned models, any
checkpoint), their answers streamed side by side.

The page's script posts each column's request to ``/playground/chat``, which builds the API's own
:class:`ChatCompletionRequest` (streamed, with usage) and hands it to the chat service the API uses,
for the viewer's organisation; the answer is that service's server-sent events as they come. A
refusal (an unknown model, a schema the engine can't enforce, a prompt too long) is the API's error
body, shown in that column.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from selftune.api.chat.protocol import ChatCompletionRequest
from selftune.api.chat.router import Chat
from selftune.api.errors import APIError, bad_request, invalid_value
from selftune.api.fine_tuning.router import Jobs
from selftune.api.models.router import Models
from selftune.dashboard.access import PostedBy, Who
from selftune.dashboard.library import trained_models
from selftune.dashboard.render import render, secure
from selftune.models.catalog import base_models
from selftune.models.ids import parse_fine_tuned_id

router = APIRouter(include_in_schema=False)
MIN_COLUMNS, MAX_COLUMNS = 2, 4
FIELDS = ("model", "messages", "response_format", "json_schema", "temperature", "max_tokens", "seed")
DEFAULT_MAX_TOKENS = 128
SCHEMA_NAME = "playground"


@router.get("/playground")
def playground_page(request: Request, who: Who, models: Models, jobs: Jobs,
                    model: Annotated[list[str], Query()] = ()):  # noqa: B006 - a tuple, never mutated
    """The page; ``?model=a&model=b`` picks the columns' models (the job and models pages link here)."""
    bases = list(base_models())
    trained = trained_models(who.org, models, jobs)
    offered = set(bases) | {t.model for t in trained if t.model} | {
        c.fine_tuned_model_checkpoint for t in trained for c in t.checkpoints}
    chosen = [m for m in model if m][:MAX_COLUMNS]
    parsed = [parse_fine_tuned_id(m) for m in chosen]
    for default in [p.base for p in parsed if p is not None] + bases:  # fill up: the chosen ones' bases first
        if len(chosen) >= MIN_COLUMNS:
            break
        if default not in chosen:
            chosen.append(default)
    columns = chosen + [chosen[-1] if chosen else ""] * (MAX_COLUMNS - len(chosen))
    return render(request, who, "playground.html", bases=bases, trained=trained, columns=columns,
                  shown=max(MIN_COLUMNS, len(chosen)), unlisted=[m for m in chosen if m not in offered],
                  max_columns=MAX_COLUMNS, default_max_tokens=DEFAULT_MAX_TOKENS)


def _error(exc: APIError) -> JSONResponse:
    return secure(JSONResponse(exc.body(), status_code=exc.status))


def response_format(text: str) -> dict:
    """The schema text area as the API's ``response_format``: a JSON schema, or a whole
    ``{"name": ..., "schema": ...}`` as the API's ``json_schema`` takes it."""
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request(f"JSON schema: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.",
                          param="json_schema") from None
    if not isinstance(schema, dict):
        raise bad_request("JSON schema: must be a JSON object, like {\"type\": \"object\", \"properties\": {...}}.",
                          param="json_schema")
    if "schema" in schema and "name" in schema:
        return {"type": "json_schema", "json_schema": schema}
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema}}


def chat_request(body: object) -> ChatCompletionRequest:
    """The API's request for one column, streamed with usage; a 400 naming the field when it is wrong."""
    if not isinstance(body, dict):
        raise bad_request("The request must be a JSON object.")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise bad_request(f"Unrecognized field: {unknown[0]}", param=unknown[0], code="unknown_parameter")
    fields = {name: body[name] for name in FIELDS if body.get(name) not in (None, "") and name != "json_schema"}
    schema = body.get("json_schema")
    if isinstance(schema, str) and schema.strip():
        if "response_format" in fields:
            raise bad_request("Give either json_schema or response_format, not both.", param="json_schema")
        fields["response_format"] = response_format(schema)
    try:
        return ChatCompletionRequest.model_validate({**fields, "stream": True,
                                                     "stream_options": {"include_usage": True}})
    except ValidationError as exc:
        raise invalid_value(exc.errors()) from None


@router.post("/playground/chat")
async def playground_chat(request: Request, who: PostedBy, chat: Chat):
    """One column's answer: the chat service's server-sent events, or the API's error body."""
    try:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise bad_request("The request must be a JSON object.") from None
        events = await chat.stream(who.org, chat_request(body))
    except APIError as exc:
        return _error(exc)
    return secure(StreamingResponse(events, media_type="text/event-stream",
                                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}))
