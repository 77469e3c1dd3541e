"""Constrained decoding for ``response_format`` (and forced tool calls), with llguidance.

llguidance (Microsoft's grammar engine, also used by vLLM and llama.cpp) compiles a JSON schema into
a grammar and, at every step, tells which tokens may come next; the sampler only chooses among those.
It ships as one small wheel with no dependencies, where xgrammar would pull in triton, and it
computes a 49k-token mask in about 2 ms on this CPU.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import torch

# compact JSON: a small model given free whitespace can fill its whole answer with newlines
JSON_OPTIONS = {"whitespace_flexible": False}

_tokenizers: dict[int, object] = {}
_tokenizers_lock = threading.Lock()


def json_grammar(alternatives: list[tuple[str, dict, str]]) -> str:
    """The grammar (in llguidance's Lark dialect, which vLLM's guidance backend also takes) of an
    answer that is one of the alternatives: each an opening text, JSON that matches a schema, a
    closing text (a plain JSON answer has empty texts; a tool call in the ``<tool_call>`` convention
    has tags around it)."""
    rules, names = [], []
    for i, (opening, schema, closing) in enumerate(alternatives):
        parts = [json.dumps(opening)] if opening else []
        parts.append(f"json{i}")
        parts += [json.dumps(closing)] if closing else []
        names.append(f"alt{i}")
        rules.append(f"alt{i}: {' '.join(parts)}")
        rules.append(f"json{i}: %json {json.dumps({**schema, 'x-guidance': JSON_OPTIONS})}")
    return "\n".join([f"start: {' | '.join(names)}", *rules])


def grammar_problem(grammar: str, tokenizer, stop_tokens: set[int]) -> str | None:
    """Why llguidance cannot use this grammar with this tokenizer (an unsupported schema keyword, a
    bad regex, ...), or None."""
    from llguidance import LLMatcher

    error = LLMatcher.validate_grammar(LLMatcher.grammar_from_lark(grammar), ll_tokenizer(tokenizer, stop_tokens))
    return error or None


def ll_tokenizer(tokenizer, stop_tokens: set[int]):
    """llguidance's view of a transformers tokenizer; built once per tokenizer (it takes ~0.5 s)."""
    import llguidance.hf

    with _tokenizers_lock:
        key = id(tokenizer)
        if key not in _tokenizers:
            _tokenizers[key] = (tokenizer, llguidance.hf.from_tokenizer(tokenizer, eos_token=sorted(stop_tokens)))
        return _tokenizers[key][1]


class Constraint:
    """The grammar state of one sequence: which tokens may come next, advanced by each chosen token."""

    def __init__(self, grammar: str, tokenizer, stop_tokens: set[int]):
        from llguidance import LLMatcher

        self.matcher = LLMatcher(ll_tokenizer(tokenizer, stop_tokens), LLMatcher.grammar_from_lark(grammar))
        if self.matcher.is_error():
            raise ValueError(self.matcher.get_error())

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [V] with every token the grammar forbids at -inf."""
        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        allowed = torch.from_numpy(np.unpackbits(bits, bitorder="little")[:logits.shape[-1]].astype(bool))
        if len(allowed) < logits.shape[-1]:  # model rows beyond the tokenizer's vocabulary: never valid
            allowed = torch.cat([allowed, torch.zeros(logits.shape[-1] - len(allowed), dtype=torch.bool)])
        return logits.masked_fill(~allowed, float("-inf"))

    def advance(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise RuntimeError(f"the grammar refused token {token}: {self.matcher.get_error()}")

    @property
    def finished(self) -> bool:
        """The grammar is complete: only an end-of-turn token may follow."""
        return self.matcher.is_stopped()

