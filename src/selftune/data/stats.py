"""``stats(path, model)``: how big is this training set, in the model's own tokens, and what will it cost?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from selftune.data.check import iter_examples
from selftune.data.estimate import auto_epochs, billed_tokens
from selftune.data.problems import Purpose
from selftune.data.tokens import TokenCounter


class Distribution(BaseModel):
    min: int
    mean: float
    p50: float
    p95: float
    max: int


class Estimate(BaseModel):
    n_epochs: int = Field(description='what n_epochs="auto" picks for this many examples')
    billed_tokens: int = Field(description="epochs x tokens, each example capped at the context")
    tokens_per_second: float | None = Field(None, description="measured training speed on this machine")
    seconds: float | None = Field(None, description="estimated training time on this machine")
    machine: str | None = None


class DatasetStats(BaseModel):
    path: str
    model: str
    purpose: Purpose | None
    examples: int
    context_length: int
    tokens_per_example: Distribution | None
    total_tokens: int
    trained_tokens: int = Field(description="tokens that carry loss (assistant answers and their end-of-turn)")
    over_context: int = Field(description="examples longer than the context, truncated in training")
    estimate: Estimate


def stats(path: str | Path, model: str, epochs: int | None = None, measure_speed: bool = True) -> DatasetStats:
    """Token statistics of a valid file and the cost and time of training on it.

    Raises SelftuneError at the first invalid line: run :func:`selftune.data.check` first for the
    full list of problems.
    """
    counter = TokenCounter(model)
    totals, trained, purpose = [], 0, None
    for _, example in iter_examples(path):
        counts = counter.count(example)
        totals.append(counts.total)
        trained += counts.trained
        purpose = purpose or ("dpo" if hasattr(example, "preferred_output") else "sft")

    n_epochs = epochs or auto_epochs(len(totals))
    billed = billed_tokens(totals, n_epochs, counter.context)
    estimate = Estimate(n_epochs=n_epochs, billed_tokens=billed)
    if measure_speed and totals:
        from selftune.data.calibration import training_speed

        speed = training_speed(model)
        estimate.tokens_per_second = speed.tokens_per_second
        estimate.seconds = billed / speed.tokens_per_second
        estimate.machine = speed.machine

    return DatasetStats(
        path=str(path), model=model, purpose=purpose, examples=len(totals),
        context_length=counter.context, tokens_per_example=_distribution(totals),
        total_tokens=sum(totals), trained_tokens=trained,
        over_context=sum(n > counter.context for n in totals), estimate=estimate,
    )


def _distribution(values: list[int]) -> Distribution | None:
    if not values:
        return None
    array = np.asarray(values)
    return Distribution(min=int(array.min()), mean=float(array.mean()), p50=float(np.percentile(array, 50)),
                        p95=float(np.percentile(array, 95)), max=int(array.max()))
