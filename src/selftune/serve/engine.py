"""What the API needs from a serving engine, and the requests and events it exchanges with one.

Two implementations: the embedded one (transformers + PEFT, CPU or one GPU,
:mod:`selftune.serve.embedded`) and one that hands the same base model and adapters to vLLM on GPUs
(:mod:`selftune.serve.vllm_engine`).
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: bool = False
    top_logprobs: int = 0
    grammar: str | None = None  # llguidance grammar the answer must follow (response_format, forced tool calls)


@dataclass
class Choice:
    token: int
    logprob: float | None = None
    top: list[tuple[int, float]] | None = None  # the most likely tokens and their logprobs


@dataclass(frozen=True)
class ServedModel:
    id: str  # as the client names it: a base model, ft:..., or ft:...:ckpt-step-N
    base: str  # what resolve_model() takes for the base weights
    adapter: Path | None = None  # the LoRA adapter folder of a fine-tuned model or checkpoint
    tokenizer: Path | None = None  # the tokenizer and chat template it was trained with (None: the base's)


@dataclass
class GenerationRequest:
    model: ServedModel
    prompt_ids: list[int]
    params: SamplingParams


@dataclass
class Token:
    """A generated token and the text it makes visible (may be empty: held back or a partial character)."""

    text: str
    choice: Choice | None  # None for text released at the end (held back for a stop sequence)


@dataclass
class Finished:
    reason: str  # stop | length | error
    prompt_tokens: int
    completion_tokens: int
    text: str  # the whole answer
    error: str | None = None


Event = Token | Finished


class Handle:
    """Lets the caller give up on a request (the client went away); the engine frees its slot."""

    def __init__(self):
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Engine(ABC):
    """A serving engine. Prompts arrive as token ids rendered by :meth:`tokenizer` (the chat template
    the model was trained with), so every engine sees exactly the same prompt."""

    name: str  # reported as the answers' system_fingerprint

    def __init__(self, kv_tokens: int):
        self.kv_tokens = kv_tokens  # most tokens the engine's cache holds; caps the context length
        self._tokenizers: dict[str, object] = {}
        self._stops: dict[str, set[int]] = {}
        self._contexts: dict[str, int] = {}

    def tokenizer(self, model: ServedModel):
        """The tokenizer (with chat template) to render this model's prompts with."""
        folder = self._tokenizer_folder(model)
        cache = self._tokenizers
        if folder not in cache:
            from transformers import AutoTokenizer

            cache[folder] = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        return cache[folder]

    def stop_tokens(self, model: ServedModel) -> set[int]:
        """Token ids that end the answer: the tokenizer's EOS and the generation config's (chat models
        often have both)."""
        folder = self._tokenizer_folder(model)
        cache = self._stops
        if folder not in cache:
            tokenizer = self.tokenizer(model)
            stops = {tokenizer.eos_token_id}
            try:
                from transformers import GenerationConfig

                eos = GenerationConfig.from_pretrained(tokenizer.name_or_path).eos_token_id
                stops.update(eos if isinstance(eos, list) else [eos])
            except OSError:
                pass
            cache[folder] = {t for t in stops if t is not None}
        return cache[folder]

    def context_length(self, model: ServedModel) -> int:
        """Most tokens (prompt + answer) one sequence may hold."""
        from selftune.models.tokenizer import context_length

        cache = self._contexts
        if model.base not in cache:
            cache[model.base] = min(context_length(model.base), self.kv_tokens)
        return cache[model.base]

    @staticmethod
    def _tokenizer_folder(model: ServedModel) -> str:
        from selftune.models.resolve import resolve_model

        return str(model.tokenizer or resolve_model(model.base))

    @abstractmethod
    def submit(self, request: GenerationRequest, emit: Callable[[Event], None]) -> Handle:
        """Start generating; ``emit`` is called (from the engine's thread) for each event, last a Finished."""

    @abstractmethod
    def close(self) -> None:
        """Stop the engine and free its memory."""


class QueueFull(Exception):
    """Too many requests wait for the engine already: the caller should come back in ``retry_after`` seconds."""

    def __init__(self, waiting: int, limit: int, retry_after: int):
        super().__init__(f"{waiting} requests are waiting for the model (the limit is {limit})")
        self.waiting, self.limit, self.retry_after = waiting, limit, retry_after


class Admission:
    """The waiting room in front of an engine: at most ``limit`` sequences wait at once; past that a new
    request is refused at once (:class:`QueueFull`) instead of queueing without end, so the time a request
    may wait and the prompts held in memory stay bounded.

    A sequence waits from its admission until the engine's first event for it (its first token, or its
    end), that is until it runs: the rule is the same whatever the engine (embedded or vLLM), since it
    is kept outside it. The starts seen recently give the engine's pace, from which a refusal says when
    to come back.
    """

    WINDOW = 30.0  # seconds of starts the pace is measured over
    MAX_RETRY_AFTER = 60  # the openai SDK honours a Retry-After of up to 120 s; past that it backs off its own way

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self._clock = clock
        self._waiting = 0
        self._starts: deque[float] = deque()  # when sequences started, within the last WINDOW seconds
        self._lock = threading.Lock()  # starts are seen on the event loop, tickets may be dropped elsewhere

    @property
    def waiting(self) -> int:
        return self._waiting

    def enter(self, sequences: int = 1) -> Ticket:
        """Admit a request of ``sequences`` sequences (its ``n``), or raise :class:`QueueFull` when ``limit``
        wait already. A request is only refused when the room is full, so any ``n`` fits an empty one."""
        with self._lock:
            if self._waiting >= self.limit:
                raise QueueFull(self._waiting, self.limit, self._retry_after())
            self._waiting += sequences
        return Ticket(self, sequences)

    def retry_after(self) -> int:
        with self._lock:
            return self._retry_after()

    def _retry_after(self) -> int:
        """Whole seconds until the sequences waiting now have all started, at the pace of the last WINDOW
        seconds (1 to MAX_RETRY_AFTER; 1 while no pace is known yet, e.g. while the model loads)."""
        now = self._clock()
        self._forget(now)
        span = now - self._starts[0] if self._starts else 0.0
        if len(self._starts) < 2 or span <= 0:
            return 1
        pace = len(self._starts) / span  # sequences started per second
        return max(1, min(self.MAX_RETRY_AFTER, math.ceil(self._waiting / pace)))

    def _forget(self, now: float) -> None:
        while self._starts and self._starts[0] < now - self.WINDOW:
            self._starts.popleft()

    def _leave(self, sequences: int, started: bool) -> None:
        with self._lock:
            self._waiting -= sequences
            if started:
                now = self._clock()
                self._starts.extend([now] * sequences)
                self._forget(now)


class Ticket:
    """One admitted request's places in the waiting room. :meth:`started` frees one as each sequence
    starts; :meth:`close` frees the rest (the request ended, failed or its client went away) and is
    also called when the ticket is dropped, so a place is never kept by a request that is gone."""

    def __init__(self, admission: Admission, sequences: int):
        self._admission = admission
        self._left = sequences

    def started(self) -> None:
        if self._left > 0:
            self._left -= 1
            self._admission._leave(1, started=True)

    def close(self) -> None:
        left, self._left = self._left, 0
        if left > 0:
            self._admission._leave(left, started=False)

    def __del__(self):
        self.close()
