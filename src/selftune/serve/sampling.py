"""Choosing each next token: OpenAI's sampling parameters, applied to one sequence's logits.

Penalties follow OpenAI's documented formula (``logit -= count * frequency_penalty + (count > 0) *
presence_penalty``); temperature 0 is greedy; ``seed`` gives each sequence its own generator, so the
same request with the same seed gives the same answer whatever else is in the batch. A grammar
(:mod:`selftune.serve.constraints`) masks the tokens it forbids before anything else.
"""

from __future__ import annotations

import torch

from selftune.serve.constraints import Constraint
from selftune.serve.engine import Choice, SamplingParams


class Sampler:
    """The sampling state of one sequence: its generator and how often it has produced each token."""

    def __init__(self, params: SamplingParams, vocab_size: int, constraint: Constraint | None = None):
        self.params = params
        self.constraint = constraint
        self.generator = torch.Generator()
        self.generator.manual_seed(params.seed if params.seed is not None else int(torch.randint(2**62, (1,))))
        self.counts = torch.zeros(vocab_size) if params.presence_penalty or params.frequency_penalty else None

    def choose(self, logits: torch.Tensor) -> Choice:
        """logits [V] (float32) -> the next token."""
        p = self.params
        if self.constraint is not None:
            logits = self.constraint.mask(logits)
        if self.counts is not None:
            logits = logits - self.counts * p.frequency_penalty - (self.counts > 0).float() * p.presence_penalty
        if p.temperature <= 0:
            token = int(torch.argmax(logits))
        else:
            scaled = logits / p.temperature
            probs = torch.softmax(scaled, dim=-1)
            if p.top_p < 1.0:
                probs = _top_p(probs, p.top_p)
            token = int(torch.multinomial(probs, 1, generator=self.generator))
        if self.counts is not None:
            self.counts[token] += 1
        if self.constraint is not None:
            self.constraint.advance(token)
        if not p.logprobs:
            return Choice(token)
        logprobs = torch.log_softmax(logits, dim=-1)
        top = None
        if p.top_logprobs:
            values, ids = torch.topk(logprobs, p.top_logprobs)
            top = list(zip(ids.tolist(), values.tolist(), strict=True))
        return Choice(token, float(logprobs[token]), top)


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches ``top_p``; always the most
    likely one (a ``top_p`` as small as 5e-324 is 0.0 in float32 and would otherwise keep none)."""
    sorted_probs, order = torch.sort(probs, descending=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # mass of the tokens ranked above
    dropped = before >= top_p
    dropped[0] = False
    sorted_probs[dropped] = 0.0
    return torch.zeros_like(probs).scatter_(0, order, sorted_probs)
