"""Chat requests to any OpenAI-compatible endpoint, many at once: the one loop that evals (the models
under test, a judge) and distill (a teacher) share.

Each request's outcome comes back in order, as a value: a request that fails after the client's
retries is a :class:`Reply` with its ``error`` set, never an exception, so one bad answer does not
lose the hundreds already paid for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletion


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict]
    tools: list[dict] | None = None
    seed: int | None = None  # distill's K samples of one prompt differ by seed
    response_format: dict | None = None  # structured output: the answer decoded under a JSON schema


@dataclass(frozen=True)
class Reply:
    text: str  # the answer's content, "" when there is none
    prompt_tokens: int
    completion_tokens: int
    latency_s: float | None  # from sending to the answer (or the failure), retries included; None in a
    # batch, where requests wait in a queue and only the batch's wall time is measured
    refusal: str | None = None
    finish_reason: str | None = None
    tool_calls: bool = False  # the answer called a tool
    error: str | None = None  # "APIStatusError: ..." when the request failed

    @property
    def failed(self) -> bool:
        return self.error is not None


def chat_body(model: str, request: ChatRequest, settings: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of ``request`` to ``/v1/chat/completions``: what :func:`ask` sends, and what a line
    of a batch file carries (:mod:`selftune.evals.batched`), so both ways ask the same question."""
    body = {"model": model, "messages": request.messages, **settings}
    if request.tools:
        body["tools"] = request.tools
    if request.seed is not None:
        body["seed"] = request.seed
    if request.response_format is not None:
        body["response_format"] = request.response_format
    return body


def reply_of(completion: ChatCompletion, latency_s: float | None) -> Reply:
    """A chat completion as a :class:`Reply` (one answered directly, or one read from a batch's output)."""
    choice, usage = completion.choices[0], completion.usage
    return Reply(choice.message.content or "", usage.prompt_tokens if usage else 0,
                 usage.completion_tokens if usage else 0, latency_s, refusal=getattr(choice.message, "refusal", None),
                 finish_reason=choice.finish_reason, tool_calls=bool(choice.message.tool_calls))


def ask(client: openai.OpenAI, model: str, request: ChatRequest, settings: dict[str, Any]) -> Reply:
    """One request, its failure kept as a value (after the client's own retries with backoff)."""
    import openai

    started = time.perf_counter()
    try:
        response = client.chat.completions.create(**chat_body(model, request, settings))
    except openai.APIError as exc:
        return Reply("", 0, 0, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
    return reply_of(response, time.perf_counter() - started)


def ask_all(client: openai.OpenAI, model: str, requests: Sequence[ChatRequest], settings: dict[str, Any], *,
            concurrency: int, progress: Callable[[int], None] | None = None,
            on_reply: Callable[[int, Reply], None] | None = None) -> list[Reply]:
    """Every request's reply, in order, ``concurrency`` in flight at once. ``on_reply(index, reply)``
    runs as each arrives (distill caches answers then, so a killed run keeps what it paid for)."""

    def one(index: int) -> Reply:
        try:
            reply = ask(client, model, requests[index], settings)
            if on_reply:
                on_reply(index, reply)
            return reply
        finally:
            if progress:
                progress(1)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(len(requests))))
