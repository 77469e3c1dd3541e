"""Confidence intervals and percentiles for the report."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(scores: list[float], confidence: float = 0.95, resamples: int = 4000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean: resample the examples with replacement.

    With a few hundred examples the interval of an accuracy is several points wide, which is the
    point of showing it: two models 2 points apart on 200 examples are not shown to differ.
    """
    if not scores:
        return (float("nan"), float("nan"))
    values = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between ranks, as numpy computes it; NaN when empty."""
    return float(np.percentile(values, q)) if values else float("nan")


def bootstrap_ratio_ci(numerators: list[float], denominators: list[float], confidence: float = 0.95,
                       resamples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of sum(numerators) / sum(denominators), resampling examples.

    Precision, recall and F1 pooled over fields are such ratios (tp / (tp + fp), tp / (tp + fn),
    2tp / (2tp + fp + fn)), so each example's counts go in and the interval respects that a field
    decision belongs to its example. A resample whose denominator is 0 counts as 0.
    """
    if not numerators:
        return (float("nan"), float("nan"))
    top, bottom = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(top), size=(resamples, len(top)))
    sums_top, sums_bottom = top[picks].sum(axis=1), bottom[picks].sum(axis=1)
    ratios = np.divide(sums_top, sums_bottom, out=np.zeros_like(sums_top), where=sums_bottom > 0)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)
