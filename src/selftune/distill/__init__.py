"""Distillation: a training set from a stronger model's answers (any OpenAI-compatible teacher), or
from completions stored with ``store: true``, to fine-tune a small model on."""

from selftune.distill.run import DistillConfig, distill, from_stored

__all__ = ["DistillConfig", "distill", "from_stored"]
