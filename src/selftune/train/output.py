"""The output folder of a finished run: weights, tokenizer, results.csv and ``training.json``.

``training.json`` is written last, so its presence says the folder is complete. It records what a
user needs to trust or reproduce the run: base model, method, hyperparameters, data hashes, token
counts, final metrics, the chat template's fingerprint, and one training example rendered with its
loss mask, so anyone can see exactly which tokens were trained.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import selftune
from selftune.hardware import describe
from selftune.store.atomic import atomic_write
from selftune.train.events import TRAINING_JSON
from selftune.train.metrics import write_results_csv
from selftune.train.packing import Sequence


def write_output(trainer, result) -> Path:
    out = Path(trainer.out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".final.", dir=out))
    try:
        trainer.lm.config.use_cache = True  # training switched the cache off; generation wants it back
        trainer.model.save_pretrained(staging, safe_serialization=True)
        trainer.tokenizer.save_pretrained(staging)
        for item in staging.iterdir():  # each file lands atomically; training.json (below) marks completion
            target = out / item.name
            if item.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_results_csv(out / "results.csv", result.state.results)
    with atomic_write(out / TRAINING_JSON) as f:
        json.dump(training_record(trainer, result), f, indent=2)
    return out


def training_record(trainer, result) -> dict:
    config, state = trainer.config, result.state
    last_valid = next((r for r in reversed(state.results) if r.get("valid_loss") is not None), {})
    last = state.results[-1] if state.results else {}
    template = trainer.tokenizer.chat_template or ""
    return {
        "selftune_version": selftune.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": result.status,
        "base_model": config.model,
        "base_model_folder": str(trainer.model_folder),
        "method": config.method,
        "adapter": None if config.full else "lora",
        "hyperparameters": result.hyperparameters.to_dict(),
        "config": json.loads(config.model_dump_json()),
        "data": {
            "train_file": _file_record(result.train),
            "valid_file": _file_record(result.valid) if result.valid else None,
            "max_length": trainer.max_length,
            "tokens_per_step": trainer.tokens_per_step,
        },
        "trained_tokens": state.tokens_seen,  # the hosted meaning: tokens processed, prompts included
        "steps": state.global_step,
        "epochs_completed": state.epoch + (state.step_in_epoch / trainer.steps_per_epoch[min(
            state.epoch, len(trainer.steps_per_epoch) - 1)] if state.step_in_epoch else 0),
        "seconds": round(state.elapsed, 1),
        "tokens_per_second": round(state.tokens_seen / state.elapsed, 1) if state.elapsed else None,
        "final_metrics": {
            "train_loss": last.get("train_loss"), "train_accuracy": last.get("train_accuracy"),
            "valid_loss": last_valid.get("valid_loss"),
            "valid_mean_token_accuracy": last_valid.get("valid_mean_token_accuracy"),
        },
        "machine": {"hardware": describe(), "device": str(trainer.device), "threads": trainer.threads,
                    "precision": str(trainer.dtype).replace("torch.", "") if trainer.dtype else "float32"},
        "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest(),
        "example": rendered_example(trainer.tokenizer, result.train.example(0), result.train.lines[0]),
    }


def _file_record(data) -> dict:
    return {"path": str(data.path), "sha256": data.sha256, "examples": len(data), "tokens": data.n_tokens,
            "trained_tokens": data.n_trained, "truncated_examples": data.truncated}


def rendered_example(tokenizer, sequence: Sequence, line: int) -> dict:
    """The first training example as the model saw it, cut into spans that are / are not trained."""
    spans: list[dict] = []
    ids, trained = sequence.input_ids.tolist(), sequence.trained.tolist()
    start = 0
    for t in range(1, len(ids) + 1):
        if t == len(ids) or trained[t] != trained[start]:
            spans.append({"trained": bool(trained[start]), "text": tokenizer.decode(ids[start:t])})
            start = t
    return {"line": line, "tokens": len(ids), "trained_tokens": int(sum(trained)), "spans": spans}
