"""Stage 3: evaluation. Run a held-out set against models behind any OpenAI-compatible endpoint,
grade the answers, and put the fine-tuned model beside a few-shot-prompted base model: quality,
prompt tokens, latency and cost, in a terminal table, ``report.json`` and ``report.html``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from selftune.evals.config import EvalConfig, ModelEndpoint
from selftune.evals.results import EvalReport

if TYPE_CHECKING:
    from selftune.evals.run import evaluate


def __getattr__(name: str):
    """``evaluate`` loads the openai client; importing it lazily keeps ``EvalConfig`` cheap to import
    for the command line, which builds its options from it."""
    if name == "evaluate":
        from selftune.evals.run import evaluate

        return evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EvalConfig", "EvalReport", "ModelEndpoint", "evaluate"]
