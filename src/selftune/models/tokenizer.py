"""Tokenizer and context length of a base model, loaded the same way everywhere."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from selftune.models.resolve import resolve_model


def load_tokenizer(model_id: str):
    """The model's own tokenizer with its chat template (cached per resolved folder)."""
    return _load_tokenizer_from(resolve_model(model_id).resolve())


@functools.lru_cache(maxsize=8)
def _load_tokenizer_from(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, trust_remote_code=False)


def context_length(model_id: str) -> int:
    """Longest sequence the model was trained for, from its config.json."""
    config = json.loads((resolve_model(model_id) / "config.json").read_text())
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(config.get(key), int):
            return config[key]
    return 2048
