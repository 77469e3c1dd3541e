"""Sending a held-out set to one model under test: greedy answers, timed, with the model loaded
before the clock starts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import openai

from selftune.errors import SelftuneError
from selftune.evals.batched import send_all
from selftune.evals.requests import ChatRequest, Reply, chat_body


@dataclass
class ModelRun:
    answers: list[Reply]
    wall_s: float  # from the first request sent to the last answer received

    @property
    def ok(self) -> list[Reply]:
        return [a for a in self.answers if not a.failed]


def check_model(client: openai.OpenAI, model: str) -> None:
    """Fail before sending hundreds of requests when the endpoint doesn't know the model."""
    try:
        client.models.retrieve(model)
    except openai.NotFoundError:
        raise SelftuneError(f"{client.base_url} has no model {model!r}") from None
    except openai.APIConnectionError:
        raise SelftuneError(f"can't reach {client.base_url}; is the server running?") from None


def run_model(client: openai.OpenAI, model: str, requests: list[ChatRequest], *, max_tokens: int,
              concurrency: int, batch: bool = False, progress: Callable[[int], None] | None = None) -> ModelRun:
    """Greedy answers, in order. A request that fails after the client's retries is recorded with its
    error and graded as wrong, not dropped. ``batch``: all of them as one batch of the Batch API, timed
    from its creation to its end (waiting included), no request timed on its own."""
    if requests and not batch:  # one untimed request first: loading a model (or an adapter, or compiling a
        # schema's grammar) is not a request's latency (a batch times none of its requests)
        with contextlib.suppress(openai.APIError):  # the first request's own body (tools, schema), one token long
            client.chat.completions.create(**chat_body(model, requests[0], {"max_tokens": 1, "temperature": 0}))
    started = time.perf_counter()
    answers = send_all(client, model, requests, {"max_tokens": max_tokens, "temperature": 0}, batch=batch,
                       concurrency=concurrency, metadata={"selftune": "eval"}, progress=progress)
    return ModelRun(answers, time.perf_counter() - started)
