"""``stats(path, model)``: how big is this training set, in the model's own tokens, and what will it cost?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from selftune.data.check import iter_examples
from selftune.data.estimate import auto_epochs, billed_tokens, stepped_tokens
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
    training_tokens: int = Field(description="tokens the trainer steps over: epochs x every conversation's "
                                             "tokens, each capped at the context (= billed_tokens for chat files)")
    tokens_per_second: float | None = Field(None, description="training speed on this machine, in training tokens")
    seconds: float | None = Field(None, description="estimated training time on this machine")
    machine: str | None = None
    speed_source: str | None = Field(None, description="where the speed comes from: the last real run, or a "
                                                        "few steps of the trainer measured on this file")
    speed_problem: str | None = Field(None, description="why the trainer could not be timed on this file")


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
    totals, trained, stepped, purpose, too_long = [], 0, 0, None, []
    for line, example in iter_examples(path):
        counts = counter.count(example)
        totals.append(counts.total)
        if counts.total > counter.context:
            too_long.append(line)
        trained += counts.trained
        stepped += stepped_tokens(counts.conversations, counter.context)
        purpose = purpose or ("dpo" if hasattr(example, "preferred_output") else "sft")

    n_epochs = epochs or auto_epochs(len(totals))
    estimate = Estimate(n_epochs=n_epochs, billed_tokens=billed_tokens(totals, n_epochs, counter.context),
                        training_tokens=n_epochs * stepped)
    if measure_speed and len(totals) > len(too_long):
        _estimate_time(estimate, path, model, purpose, len(totals), too_long)

    return DatasetStats(
        path=str(path), model=model, purpose=purpose, examples=len(totals),
        context_length=counter.context, tokens_per_example=_distribution(totals),
        total_tokens=sum(totals), trained_tokens=trained,
        over_context=len(too_long), estimate=estimate,
    )


def _estimate_time(estimate: Estimate, path, model: str, purpose: Purpose, n_examples: int,
                   too_long: list[int]) -> None:
    """Training tokens / this machine's speed, measured on the file's examples that fit the context
    (a truncated one may have nothing left to train on). A file the trainer refuses gets no time:
    the token figures still stand, and ``selftune train`` will say what is wrong."""
    from selftune.data.calibration import training_speed
    from selftune.errors import SelftuneError
    from selftune.train.methods import METHODS

    method = next(m for m, spec in METHODS.items() if spec.file_format == purpose)
    try:
        speed = training_speed(model, path, n_examples, method, skip=too_long)
    except SelftuneError as exc:
        estimate.speed_problem = str(exc)
        return
    estimate.tokens_per_second = speed.tokens_per_second
    estimate.seconds = estimate.training_tokens / speed.tokens_per_second
    estimate.machine = speed.machine
    estimate.speed_source = speed.source


def _distribution(values: list[int]) -> Distribution | None:
    if not values:
        return None
    array = np.asarray(values)
    return Distribution(min=int(array.min()), mean=float(array.mean()), p50=float(np.percentile(array, 50)),
                        p95=float(np.percentile(array, 95)), max=int(array.max()))
