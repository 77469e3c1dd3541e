"""Base models: resolve a model id to a local folder, load its tokenizer and chat template."""

from selftune.models.registry import BUNDLED_MODELS, DEFAULT_MODEL, BundledModel
from selftune.models.resolve import ModelInfo, list_models, resolve_model
from selftune.models.tokenizer import context_length, load_tokenizer

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_MODEL",
    "BundledModel",
    "ModelInfo",
    "context_length",
    "list_models",
    "load_tokenizer",
    "resolve_model",
]
