"""What the API needs from a serving engine, and the requests and events it exchanges with one.

Two implementations: the embedded one (transformers + PEFT, CPU or one GPU,
:mod:`selftune.serve.embedded`) and one that hands the same base model and adapters to vLLM on GPUs
(:mod:`selftune.serve.vllm_engine`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
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
