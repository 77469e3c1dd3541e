"""Training runs on the tiny model, as the trainer tests set them up (shared with the distributed test)."""

from __future__ import annotations

from pathlib import Path

from selftune.train import TrainConfig
from tests.helpers import write_jsonl

SYSTEM = {"role": "system", "content": "Classify the customer message into one label."}


def chat_rows(n: int, start: int = 0) -> list[dict]:
    return [{"messages": [SYSTEM, {"role": "user", "content": f"message {i} " * (1 + i % 4)},
                          {"role": "assistant", "content": f"label_{i % 3}"}]} for i in range(start, start + n)]


def config(tmp_path: Path, tiny_model: Path, out: str = "out", n_train: int = 12, valid: bool = True,
           **overrides) -> TrainConfig:
    """A LoRA run over ``n_train`` examples (and 10 validation ones), 2 epochs of steps of ~4 examples."""
    train_file = write_jsonl(tmp_path / "train.jsonl", chat_rows(n_train))
    valid_file = write_jsonl(tmp_path / "valid.jsonl", chat_rows(10, start=100)) if valid else None
    settings = {"model": str(tiny_model), "train_file": train_file, "valid_file": valid_file, "out": tmp_path / out,
                "n_epochs": 2, "batch_size": 4, "seed": 0, **overrides}
    return TrainConfig(**settings)
