"""Stage 3: evaluation. Run a held-out set against models behind any OpenAI-compatible endpoint,
grade the answers, and put the fine-tuned model beside a few-shot-prompted base model: quality,
prompt tokens, latency and cost, in a terminal table, ``report.json`` and ``report.html``.
"""

from selftune.evals.run import EvalConfig, evaluate

__all__ = ["EvalConfig", "evaluate"]
