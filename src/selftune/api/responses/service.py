"""``/v1/responses``: the Responses API on the engine, prompt rendering, grammars and tool reading of chat
completions.

A request becomes the chat completion request it amounts to (instructions as the system message, the
stored conversation of ``previous_response_id``, then the input items); :class:`ChatService` prepares
and runs it, and the answer is shaped as output items. Every parameter is either honoured or refused
with a 400 that names it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from selftune.api.chat.protocol import ChatCompletionRequest
from selftune.api.chat.service import ChatService, answer, generation_failed, reads_tool_calls
from selftune.api.errors import APIError, bad_request, invalid_value, refuse_unsupported
from selftune.api.metadata import check_metadata
from selftune.api.responses import items
from selftune.api.responses.protocol import (
    FunctionCall,
    IncompleteDetails,
    OutputMessage,
    OutputText,
    Response,
    ResponseError,
    ResponseRequest,
    ResponseUsage,
)
from selftune.api.responses.stored import StoredResponses
from selftune.serve.engine import Finished, SamplingParams, ServedModel, Ticket, Token
from selftune.store.tables import new_id

# parameters of the hosted API that selftune does not implement: refused by name, never ignored
NOT_YET = ("reasoning", "conversation", "prompt", "include", "top_logprobs", "max_tool_calls", "service_tier",
           "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "safety_identifier",
           "stream_options", "context_management", "moderation", "image", "access_programs", "background_options")

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Prepared:
    """A checked request: what the engine runs, and what a stored response keeps."""

    request: ResponseRequest
    chat: ChatCompletionRequest  # the same request as chat completions reads it (tools, format, sampling)
    model: ServedModel
    prompt: list[int]
    params: SamplingParams
    history: list[dict]  # the items of previous_response_id's conversation
    input_items: list[dict]
    id: str = dataclasses.field(default_factory=lambda: new_id("resp_"))
    created_at: int = dataclasses.field(default_factory=lambda: int(time.time()))


class ResponseService:
    def __init__(self, *, chat: ChatService, stored: StoredResponses):
        self.chat = chat
        self.stored = stored

    # ---- the request ---------------------------------------------------------------------------
    @staticmethod
    def check(request: ResponseRequest) -> None:
        refuse_unsupported(request.model_extra, NOT_YET)
        if request.background:
            raise bad_request("background mode is not supported yet by selftune: send the request without it "
                              "(or stream it).", param="background", code="unsupported_parameter")
        if request.truncation == "auto":
            raise bad_request("truncation 'auto' is not supported yet by selftune: the context is never cut, a "
                              "conversation too long for it is a 400.", param="truncation",
                              code="unsupported_parameter")
        text = request.text
        if text is not None:
            unknown = sorted(set(text.model_extra or {}))
            if unknown:
                raise bad_request(f"Unrecognized request argument supplied: text.{unknown[0]}",
                                  param=f"text.{unknown[0]}", code="unknown_parameter")
            if text.verbosity not in (None, "medium"):
                raise bad_request("text.verbosity is not supported yet by selftune.", param="text.verbosity",
                                  code="unsupported_parameter")
        check_metadata(request.metadata)

    def prepare(self, org: str, request: ResponseRequest) -> Prepared:
        """The checked request, its prompt and sampling settings, or a 400/404 (runs in a worker thread)."""
        self.check(request)
        input_items = items.read_input(request.input)
        history = self.stored.conversation(org, request.previous_response_id) if request.previous_response_id else []
        system = [{"role": "system", "content": request.instructions}] if request.instructions else []
        try:
            chat = ChatCompletionRequest.model_validate({
                "model": request.model, "messages": system + items.to_messages(history + input_items),
                "max_completion_tokens": request.max_output_tokens, "temperature": request.temperature,
                "top_p": request.top_p, "response_format": items.response_format(request.text and request.text.format),
                "tools": items.chat_tools(request.tools), "tool_choice": items.chat_tool_choice(request.tool_choice),
                "parallel_tool_calls": request.parallel_tool_calls})
            model, prompt, params = self.chat.prepare(org, chat)
        except ValidationError as problem:
            raise items.translated(invalid_value(problem.errors())) from None
        except APIError as error:
            raise items.translated(error) from None
        return Prepared(request, chat, model, prompt, params, history, input_items)

    # ---- the answer ----------------------------------------------------------------------------
    async def create(self, org: str, request: ResponseRequest) -> Response:
        ticket, prepared = await self.chat.admitted(1, self.prepare, org, request)
        text, final = "", None
        async for _, event in self.chat.generate(prepared.model, prepared.prompt, prepared.params, ticket):
            if isinstance(event, Token):
                text += event.text
            else:
                final = event
        response = self._finished(prepared, _output(prepared, text, final.reason, new_id("msg_")), final)
        await self._store(org, prepared, response)
        return response

    def _response(self, prepared: Prepared, **fields) -> Response:
        """The response object: the request's settings as the hosted API echoes them, and ``fields``."""
        request = prepared.request
        text_format = (request.text and request.text.format) or {"type": "text"}
        return Response(
            id=prepared.id, created_at=prepared.created_at, model=request.model, instructions=request.instructions,
            max_output_tokens=request.max_output_tokens, previous_response_id=request.previous_response_id,
            parallel_tool_calls=request.parallel_tool_calls is not False, store=request.store is not False,
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            text={"format": text_format, "verbosity": "medium"}, tool_choice=request.tool_choice or "auto",
            tools=request.tools or [], user=request.user, metadata=request.metadata or {}, **fields)

    def _finished(self, prepared: Prepared, output: list, final: Finished) -> Response:
        incomplete = final.reason == "length"
        used = len(prepared.prompt)
        return self._response(
            prepared, status="incomplete" if incomplete else "completed", output=output,
            completed_at=None if incomplete else int(time.time()),
            incomplete_details=IncompleteDetails(reason="max_output_tokens") if incomplete else None,
            usage=ResponseUsage(input_tokens=used, output_tokens=final.completion_tokens,
                                total_tokens=used + final.completion_tokens))

    async def _store(self, org: str, prepared: Prepared, response: Response) -> None:
        if prepared.request.store is not False:
            await run_in_threadpool(self.stored.save, org, response, prepared.history, prepared.input_items)

    # ---- streaming -----------------------------------------------------------------------------
    async def stream(self, org: str, request: ResponseRequest) -> AsyncIterator[str]:
        """Server-sent events in the hosted sequence (``response.created``, ``response.in_progress``, the
        output items with their deltas, ``response.completed`` or ``response.incomplete``). 400s are
        raised before the first byte; a fault after it is an ``error`` event then ``response.failed``."""
        ticket, prepared = await self.chat.admitted(1, self.prepare, org, request)
        return self._stream(org, prepared, ticket)

    async def _stream(self, org: str, prepared: Prepared, ticket: Ticket) -> AsyncIterator[str]:
        numbers = itertools.count()

        def event(kind: str, **fields) -> str:
            body = {"type": kind, "sequence_number": next(numbers), **fields}
            return f"event: {kind}\ndata: {json.dumps(body)}\n\n"

        def dump(model) -> dict:
            return model.model_dump(mode="json")

        yield event("response.created", response=dump(self._response(prepared, status="in_progress")))
        yield event("response.in_progress", response=dump(self._response(prepared, status="in_progress")))
        message_id = new_id("msg_")
        live = not reads_tool_calls(prepared.chat)  # with tools, the answer is sent whole once read
        text, final, opened = "", None, False
        try:
            async for _, token in self.chat.generate(prepared.model, prepared.prompt, prepared.params, ticket):
                if isinstance(token, Finished):
                    final = token
                    continue
                text += token.text
                if not live or not token.text:
                    continue
                if not opened:
                    opened = True
                    for chunk in _open_message(event, message_id, 0):
                        yield chunk
                yield event("response.output_text.delta", item_id=message_id, output_index=0, content_index=0,
                            delta=token.text, logprobs=[])
            output = _output(prepared, text, final.reason, message_id)
            for index, item in enumerate(output):
                if isinstance(item, OutputMessage):
                    if not opened:
                        for chunk in _open_message(event, item.id, index):
                            yield chunk
                        if item.content[0].text:
                            yield event("response.output_text.delta", item_id=item.id, output_index=index,
                                        content_index=0, delta=item.content[0].text, logprobs=[])
                    part = item.content[0]
                    yield event("response.output_text.done", item_id=item.id, output_index=index, content_index=0,
                                text=part.text, logprobs=[])
                    yield event("response.content_part.done", item_id=item.id, output_index=index, content_index=0,
                                part=dump(part))
                else:
                    yield event("response.output_item.added", output_index=index,
                                item={**dump(item), "arguments": "", "status": "in_progress"})
                    yield event("response.function_call_arguments.delta", item_id=item.id, output_index=index,
                                delta=item.arguments)
                    yield event("response.function_call_arguments.done", item_id=item.id, output_index=index,
                                arguments=item.arguments)
                yield event("response.output_item.done", output_index=index, item=dump(item))
            response = self._finished(prepared, output, final)
            await self._store(org, prepared, response)
            yield event(f"response.{response.status}", response=dump(response))
        except Exception as exc:  # noqa: BLE001 - the status line is sent: an error event, then response.failed
            error = exc if isinstance(exc, APIError) else generation_failed(f"{type(exc).__name__}: {exc}")
            log.error("response stream %s ended with an error: %s", prepared.id, error.message,
                      exc_info=not isinstance(exc, APIError))
            yield event("error", code=error.code, message=error.message, param=error.param)
            failed = self._response(prepared, status="failed",
                                    error=ResponseError(code=error.code or "server_error", message=error.message))
            yield event("response.failed", response=dump(failed))


def _open_message(event, message_id: str, index: int):
    """The events that open an assistant message whose text follows in deltas."""
    item = OutputMessage(id=message_id, status="in_progress", content=[])
    yield event("response.output_item.added", output_index=index, item=item.model_dump(mode="json"))
    yield event("response.content_part.added", item_id=message_id, output_index=index, content_index=0,
                part=OutputText(text="").model_dump(mode="json"))


def _output(prepared: Prepared, text: str, reason: str, message_id: str) -> list[OutputMessage | FunctionCall]:
    """The output items of a whole answer: its text as a message (unless it is only tool calls), then
    its function calls."""
    content, calls, reason = answer(prepared.chat, text, reason)
    status = "incomplete" if reason == "length" else "completed"
    output: list[OutputMessage | FunctionCall] = []
    if content or not calls:
        output.append(OutputMessage(id=message_id, status=status, content=[OutputText(text=content or "")]))
    for call in calls:
        output.append(FunctionCall(id=new_id("fc_"), call_id=call.id, name=call.function.name,
                                   arguments=call.function.arguments))
    return output
