"""Distillation: a training set from a stronger model's answers (any OpenAI-compatible teacher), or
from completions stored with ``store: true``, to fine-tune a small model on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from selftune.distill.config import DistillConfig, StoredDistillConfig
from selftune.distill.results import DistillSummary

if TYPE_CHECKING:
    from selftune.distill.run import distill, from_stored


def __getattr__(name: str):
    """``distill`` and ``from_stored`` load the openai client; importing them lazily keeps the configs
    cheap to import for the command line, which builds its options from them."""
    if name in ("distill", "from_stored"):
        from selftune.distill import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DistillConfig", "DistillSummary", "StoredDistillConfig", "distill", "from_stored"]
