"""Chat completions: find the model, check the request, render the prompt, run it on the engine.

Every parameter is either honoured or refused with a 400 that names it. The engine runs in its own
thread; its events cross into the event loop through an asyncio queue, so the API keeps answering
while it generates. A request first enters the engine's waiting room (:class:`Admission`): when
``SELFTUNE_SERVE_MAX_QUEUED`` sequences wait already, it is refused with a 429 and ``Retry-After``
before any work is done for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from selftune.api.chat import structured, tools
from selftune.api.chat.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    TokenLogprob,
    ToolCallDelta,
    TopLogprob,
    Usage,
)
from selftune.api.chat.stored import StoredCompletions
from selftune.api.errors import APIError, bad_request, not_found, rate_limited, refuse_unsupported
from selftune.api.metadata import check_metadata
from selftune.api.models.service import find_fine_tuned
from selftune.models.adapter import is_adapter_folder
from selftune.models.catalog import base_models
from selftune.models.ids import base_model_of
from selftune.serve.engine import (
    Admission,
    Engine,
    Finished,
    GenerationRequest,
    QueueFull,
    SamplingParams,
    ServedModel,
    Ticket,
    Token,
)
from selftune.store.db import Database
from selftune.store.tables import JobRow, new_id

# parameters of the hosted API that selftune does not implement yet: refused by name, never ignored
NOT_YET = ("functions", "function_call", "logit_bias", "audio",
           "modalities", "prediction", "reasoning_effort", "service_tier", "web_search_options", "verbosity",
           "prompt_cache_key", "safety_identifier")
MAX_STOP_SEQUENCES = 4

log = logging.getLogger(__name__)
SHUTTING_DOWN = object()  # put into the running answers' queues by shut_down()


class ChatService:
    def __init__(self, *, db: Database, engine_factory: Callable[[], Engine], stored: StoredCompletions,
                 max_queued: int):
        self.db = db
        self.admission = Admission(max_queued)
        self.stored = stored
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._closing = False
        self._queues: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()  # of the answers running now

    def engine(self) -> Engine:
        """Created on the first request: the server starts without loading torch."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = self._engine_factory()
            return self._engine

    def shut_down(self) -> None:
        """The server got SIGTERM or Ctrl-C: every running answer ends now with an error (a stream: its
        error event and [DONE]), so the server's graceful shutdown need not wait for long answers. Called
        from the signal handler, in the event loop's thread: no locks, only thread-safe calls."""
        self._closing = True
        for loop, queue in list(self._queues):
            loop.call_soon_threadsafe(queue.put_nowait, (0, SHUTTING_DOWN))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

    # ---- the request ---------------------------------------------------------------------------
    def admit(self, sequences: int = 1) -> Ticket:
        """A place in the waiting room for each sequence of a request, or a 429 at once (no model work).
        Every surface that answers on this engine (chat, responses) enters here."""
        try:
            return self.admission.enter(sequences)
        except QueueFull as full:
            raise rate_limited(f"The server is busy: {full.waiting} requests are waiting for the model (its limit, "
                               f"SELFTUNE_SERVE_MAX_QUEUED, is {full.limit}). Please try again in "
                               f"{full.retry_after}s.", full.retry_after) from None

    async def admitted(self, sequences: int, prepare, *args):
        """Admission for ``sequences``, then ``prepare(*args)`` off the event loop: ``(ticket, prepared)``; a
        request ``prepare`` refuses gives its places back. Chat and the Responses API both start here."""
        ticket = self.admit(sequences)
        try:
            return ticket, await run_in_threadpool(prepare, *args)
        except BaseException:
            ticket.close()
            raise

    async def _prepared(self, org: str, request: ChatCompletionRequest):
        ticket, (model, prompt, params) = await self.admitted(request.n or 1, self.prepare, org, request)
        return ticket, model, prompt, params

    def served_model(self, org: str, model_id: str) -> ServedModel:
        bases = base_models()
        if model_id in bases:
            return ServedModel(model_id, bases[model_id].source)
        with self.db.transaction() as session:
            row = find_fine_tuned(session, org, model_id)
            job = session.scalar(select(JobRow).where(JobRow.id == row.job_id))
        base = bases.get(base_model_of(job.model))
        if base is None:
            raise bad_request(f"The base model {base_model_of(job.model)!r} of {model_id} is no longer offered by "
                              "this server.",
                              param="model", code="model_not_available")
        folder = Path(row.path)
        if not is_adapter_folder(folder):
            raise not_found("model", model_id, param="model")
        tokenizer = folder if (folder / "tokenizer_config.json").is_file() else None
        return ServedModel(model_id, base.source, folder, tokenizer)

    @staticmethod
    def check(request: ChatCompletionRequest) -> None:
        refuse_unsupported(request.model_extra, NOT_YET)
        check_metadata(request.metadata)
        structured.answer_schema(request)
        if request.top_logprobs and not request.logprobs:
            raise bad_request("top_logprobs needs logprobs=true.", param="top_logprobs")
        stops = _stop_sequences(request)
        if len(stops) > MAX_STOP_SEQUENCES:
            raise bad_request(f"stop may hold at most {MAX_STOP_SEQUENCES} sequences.", param="stop")
        if request.stream_options is not None and not request.stream:
            raise bad_request("stream_options needs stream=true.", param="stream_options")
        for i, message in enumerate(request.messages):
            for part in message.content if isinstance(message.content, list) else []:
                if part.type != "text":
                    raise bad_request(f"Content parts of type {part.type!r} are not supported: selftune's models "
                                      "read text only.", param=f"messages.[{i}].content")

    def prepare(self, org: str, request: ChatCompletionRequest) -> tuple[ServedModel, list[int], SamplingParams]:
        """Model, prompt tokens and sampling settings, or a 400/404 (runs in a worker thread)."""
        from selftune.models.chat_template import render_prompt

        self.check(request)
        model = self.served_model(org, request.model)
        engine = self.engine()
        tokenizer = engine.tokenizer(model)
        tools.check(request, tokenizer.chat_template or "")
        messages = [m.model_dump(exclude_none=True) for m in request.messages]
        prompt = render_prompt(tokenizer, messages, tools.for_template(request))
        grammar = structured.grammar(request)
        if grammar is not None:
            from selftune.serve.constraints import grammar_problem

            problem = grammar_problem(grammar, tokenizer, engine.stop_tokens(model))
            if problem:
                param = "response_format" if request.response_format else "tools"
                raise bad_request(f"This {param} can't be enforced: {problem}", param=param)
        context = engine.context_length(model)
        requested = request.max_completion_tokens or request.max_tokens
        if len(prompt) + (requested or 1) > context:
            raise bad_request(f"This model's maximum context length is {context} tokens. However, you requested "
                              f"{len(prompt) + (requested or 1)} tokens ({len(prompt)} in the messages, "
                              f"{requested or 1} in the completion). Please reduce the length of the messages or "
                              "completion.", param="messages", code="context_length_exceeded")
        stops = _stop_sequences(request)
        params = SamplingParams(
            max_tokens=requested or context - len(prompt),
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p, stop=stops, seed=request.seed,
            presence_penalty=request.presence_penalty or 0.0, frequency_penalty=request.frequency_penalty or 0.0,
            logprobs=bool(request.logprobs), top_logprobs=request.top_logprobs or 0, grammar=grammar)
        return model, prompt, params

    # ---- generation ----------------------------------------------------------------------------
    async def _events(self, model: ServedModel, prompt: list[int], params: SamplingParams, n: int,
                      ticket: Ticket) -> AsyncIterator[tuple[int, Token | Finished]]:
        """(choice index, event) as the engine produces them, for n sequences of one prompt. Each sequence
        leaves the waiting room with its first event; the ticket is closed whatever happens."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        handles, running = [], set()
        try:
            engine = self.engine()
            if self._closing:
                raise shutting_down()
            self._queues.add((loop, queue))
            for i in range(n):
                seeded = params if params.seed is None else dataclasses.replace(params, seed=params.seed + i)

                def emit(event, i=i):
                    loop.call_soon_threadsafe(queue.put_nowait, (i, event))

                handles.append(engine.submit(GenerationRequest(model, prompt, seeded), emit))
            finished = 0
            while finished < n:
                i, event = await queue.get()
                if event is SHUTTING_DOWN:
                    raise shutting_down()
                if i not in running:
                    running.add(i)
                    ticket.started()
                if isinstance(event, Finished):
                    finished += 1
                    if event.reason == "error":
                        raise generation_failed(event.error)
                yield i, event
        finally:
            ticket.close()
            self._queues.discard((loop, queue))
            for handle in handles:  # the client went away, or an error: free the engine's slots
                handle.cancel()

    def generate(self, model: ServedModel, prompt: list[int], params: SamplingParams,
                 ticket: Ticket) -> AsyncIterator[tuple[int, Token | Finished]]:
        """One answer's engine events (from :meth:`prepare`'s settings and an :meth:`admit` ticket), for the
        other surfaces that answer on this engine (the Responses API): the same admission, submission,
        cancellation and shutdown."""
        return self._events(model, prompt, params, 1, ticket)

    async def complete(self, org: str, request: ChatCompletionRequest) -> ChatCompletion:
        ticket, model, prompt, params = await self._prepared(org, request)
        n = request.n or 1
        texts, logprobs, finals = [""] * n, [[] for _ in range(n)], [None] * n
        tokenizer = self.engine().tokenizer(model)
        async for i, event in self._events(model, prompt, params, n, ticket):
            if isinstance(event, Token):
                texts[i] += event.text
                if params.logprobs and event.choice is not None:
                    logprobs[i].append(_token_logprob(tokenizer, event.choice))
            else:
                finals[i] = event
        completion = self._completion(request, new_id("chatcmpl-"), int(time.time()), len(prompt), texts, finals,
                                      [ChoiceLogprobs(content=lp) for lp in logprobs] if params.logprobs else None)
        await self._store(org, request, completion)
        return completion

    def _completion(self, request: ChatCompletionRequest, completion_id: str, created: int, prompt_tokens: int,
                    texts: list[str], finals: list[Finished], logprobs: list | None = None) -> ChatCompletion:
        choices = []
        for i, (text, final) in enumerate(zip(texts, finals, strict=True)):
            content, calls, reason = answer(request, text, final.reason)
            choices.append(Choice(index=i, message=AssistantMessage(content=content, tool_calls=calls or None),
                                  finish_reason=reason, logprobs=logprobs[i] if logprobs else None))
        completion_tokens = sum(f.completion_tokens for f in finals)
        return ChatCompletion(id=completion_id, created=created, model=request.model, choices=choices,
                              usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                          total_tokens=prompt_tokens + completion_tokens),
                              system_fingerprint=f"selftune-{self.engine().name}")

    async def _store(self, org: str, request: ChatCompletionRequest, completion: ChatCompletion) -> None:
        """``store: true``: keep the request and the answer (written off the event loop)."""
        if not request.store:
            return
        sent = request.model_dump(mode="json", exclude_none=True, exclude={"stream", "stream_options", "store",
                                                                           "metadata"})
        await run_in_threadpool(self.stored.save, org, sent, completion.model_dump(mode="json"), request.metadata)

    async def stream(self, org: str, request: ChatCompletionRequest) -> AsyncIterator[str]:
        """Server-sent events in the hosted format, always ending with ``data: [DONE]``; 400s are raised
        before the first byte, so they arrive as ordinary error responses (a full waiting room's 429 too),
        and a fault after it arrives as one error event (the client sees an error, never a cut connection)."""
        ticket, model, prompt, params = await self._prepared(org, request)
        return self._stream(org, model, prompt, params, request, ticket)

    async def _stream(self, org, model, prompt, params, request, ticket: Ticket) -> AsyncIterator[str]:
        n = request.n or 1
        chunk_id, created = new_id("chatcmpl-"), int(time.time())
        tokenizer = self.engine().tokenizer(model)

        def chunk(choices, usage=None) -> str:
            body = ChatCompletionChunk(id=chunk_id, created=created, model=request.model, choices=choices,
                                       usage=usage, system_fingerprint=f"selftune-{self.engine().name}")
            return f"data: {body.model_dump_json(exclude_none=False)}\n\n"

        for i in range(n):
            yield chunk([ChunkChoice(index=i, delta=Delta(role="assistant", content=""))])
        completion_tokens = 0
        held = [""] * n  # the whole answers; with tools they are sent whole (only then is a call known to be one)
        finals: list[Finished | None] = [None] * n
        try:
            async for i, event in self._events(model, prompt, params, n, ticket):
                if isinstance(event, Token):
                    held[i] += event.text
                    logprobs = (ChoiceLogprobs(content=[_token_logprob(tokenizer, event.choice)])
                                if params.logprobs and event.choice is not None else None)
                    if reads_tool_calls(request):
                        continue
                    if event.text or logprobs:
                        yield chunk([ChunkChoice(index=i, delta=Delta(content=event.text), logprobs=logprobs)])
                    continue
                completion_tokens += event.completion_tokens
                finals[i] = event
                reason = event.reason
                if reads_tool_calls(request):
                    content, calls, reason = answer(request, held[i], event.reason)
                    deltas = [ToolCallDelta(index=k, **call.model_dump()) for k, call in enumerate(calls)]
                    yield chunk([ChunkChoice(index=i, delta=Delta(content=content, tool_calls=deltas or None))])
                yield chunk([ChunkChoice(index=i, delta=Delta(), finish_reason=reason)])
            if request.stream_options and request.stream_options.include_usage:
                yield chunk([], Usage(prompt_tokens=len(prompt), completion_tokens=completion_tokens,
                                      total_tokens=len(prompt) + completion_tokens))
            await self._store(org, request, self._completion(request, chunk_id, created, len(prompt), held, finals))
        except Exception as exc:  # noqa: BLE001 - the status line is sent: an error event, then [DONE]
            error = exc if isinstance(exc, APIError) else generation_failed(f"{type(exc).__name__}: {exc}")
            log.error("chat stream %s ended with an error: %s", chunk_id, error.message,
                      exc_info=not isinstance(exc, APIError))
            yield f"data: {json.dumps(error.body())}\n\n"  # the openai SDK raises its APIError on this event
        yield "data: [DONE]\n\n"


def generation_failed(reason: str | None) -> APIError:
    return APIError(500, f"Generation failed: {reason}", type="server_error", code="generation_failed")


def shutting_down() -> APIError:
    return APIError(503, "The server is shutting down: this answer was cut short. Send the request again once "
                         "it is back.", type="server_error", code="server_shutting_down")


def reads_tool_calls(request: ChatCompletionRequest) -> bool:
    return bool(request.tools) and request.tool_choice != "none"


def answer(request: ChatCompletionRequest, text: str, reason: str) -> tuple[str | None, list, str]:
    """(content, tool calls, finish reason) of a whole answer."""
    if not reads_tool_calls(request):
        return text, [], reason
    content, calls = tools.parse(text, {t.function.name for t in request.tools})
    if request.parallel_tool_calls is False:
        calls = calls[:1]
    return content, calls, "tool_calls" if calls and reason == "stop" else reason


def _stop_sequences(request: ChatCompletionRequest) -> list[str]:
    """``stop`` as a list: the API takes one string or several."""
    return [request.stop] if isinstance(request.stop, str) else (request.stop or [])


def _token_logprob(tokenizer, choice) -> TokenLogprob:
    def entry(token_id: int, logprob: float) -> TopLogprob:
        text = tokenizer.decode([token_id])
        return TopLogprob(token=text, logprob=logprob, bytes=list(text.encode("utf-8")))

    main = entry(choice.token, choice.logprob)
    return TokenLogprob(**main.model_dump(), top_logprobs=[entry(t, lp) for t, lp in choice.top or []])
