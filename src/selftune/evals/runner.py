"""Sending prompts to a model through any OpenAI-compatible endpoint, concurrently, and recording
what each request returned and took."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import openai

from selftune.errors import SelftuneError


@dataclass
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    error: str | None = None


@dataclass
class ModelRun:
    answers: list[Answer]
    wall_s: float  # from the first request sent to the last answer received

    @property
    def ok(self) -> list[Answer]:
        return [a for a in self.answers if a.error is None]


def check_model(client: openai.OpenAI, model: str) -> None:
    """Fail before sending hundreds of requests when the endpoint doesn't know the model."""
    try:
        client.models.retrieve(model)
    except openai.NotFoundError:
        raise SelftuneError(f"{client.base_url} has no model {model!r}") from None
    except openai.APIConnectionError:
        raise SelftuneError(f"can't reach {client.base_url}; is the server running?") from None


def run_model(client: openai.OpenAI, model: str, prompts: list[tuple[list[dict], list[dict] | None]], *,
              max_tokens: int, concurrency: int, progress: Callable[[int], None] | None = None) -> ModelRun:
    """Greedy answers to (messages, tools) prompts, in their order. A request that fails after the
    client's retries is recorded with its error and graded as wrong, not dropped."""

    def one(prompt: tuple[list[dict], list[dict] | None]) -> Answer:
        messages, tools = prompt
        started = time.perf_counter()
        try:
            response = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                      temperature=0, **({"tools": tools} if tools else {}))
        except openai.APIError as exc:
            return Answer("", 0, 0, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        finally:
            if progress:
                progress(1)
        latency = time.perf_counter() - started
        usage = response.usage
        return Answer((response.choices[0].message.content or "").strip(), usage.prompt_tokens,
                      usage.completion_tokens, latency)

    if prompts:  # one untimed request first: loading a model (or an adapter) is not a request's latency
        with contextlib.suppress(openai.APIError):
            client.chat.completions.create(model=model, messages=prompts[0][0], max_tokens=1, temperature=0)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(one, prompts))
    return ModelRun(answers, time.perf_counter() - started)
