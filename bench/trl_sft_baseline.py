"""Peer baseline for bench/train_throughput.py: the same LoRA fine-tune done the way a user would without selftune.

Why it exists: selftune's own training loop should be compared against what people otherwise run, which is TRL's
`SFTTrainer` with a PEFT LoRA adapter and TRL's defaults for everything else (batch size, max_length, no packing,
gradient checkpointing, bf16 autocast, learning rate, ...). Only the LoRA shape, CPU/bf16, logging, saving and the seed
are set here. bench/train_throughput.py runs this script as a subprocess and reads the JSON it writes.

Usage:
    .venv/bin/python bench/trl_sft_baseline.py --model-dir DIR --data FILE.jsonl --epochs 1 --max-examples 64 \
        --json-out result.json

Measures trainer.train() only (model loading and tokenisation happen in SFTTrainer.__init__ and are excluded), the
non-padding tokens the model saw (sum of attention_mask over every collated training batch), tokens/s, peak RSS of this
process (ru_maxrss, so it includes loading) and the training loss. The JSON also records which TRL defaults applied,
read back from the SFTConfig.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peft
import torch
import transformers
import trl
from datasets import load_dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer

from selftune.hardware import describe, paths

# SFTConfig fields whose TRL defaults we leave alone and want on record next to the numbers.
DEFAULT_FIELDS = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "lr_scheduler_type",
    "optim",
    "max_length",
    "packing",
    "padding_free",
    "assistant_only_loss",
    "completion_only_loss",
    "gradient_checkpointing",
    "bf16",
    "dataloader_num_workers",
)


class TokenCountingCollator:
    """Wraps the trainer's collator and counts the non-padding tokens of every batch it builds for training."""

    def __init__(self, inner: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.inner = inner
        self.tokens = 0
        self.batches = 0

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(examples)
        if "attention_mask" in batch:
            self.tokens += int(batch["attention_mask"].sum())
        else:  # padding-free batches carry one flattened row and position_ids instead of a mask
            self.tokens += int(batch["position_ids"].numel())
        self.batches += 1
        return batch


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(model_dir: str, data: str, epochs: int, max_examples: int | None) -> dict[str, Any]:
    dataset = load_dataset("json", data_files=data, split="train")
    if max_examples is not None:
        dataset = dataset.select(range(min(max_examples, len(dataset))))

    bf16 = paths().bf16_native  # the precision selftune picks here: a fair comparison on AVX2 CPUs too
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    with tempfile.TemporaryDirectory(prefix="trl-sft-baseline-") as output_dir:
        args = SFTConfig(
            output_dir=output_dir,
            num_train_epochs=epochs,
            bf16=bf16,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_steps=10,
            seed=0,
        )
        # A path string makes TRL load model and tokenizer itself, as a user's script would.
        trainer = SFTTrainer(model=model_dir, args=args, train_dataset=dataset, peft_config=peft_config)
        counter = TokenCountingCollator(trainer.data_collator)
        trainer.data_collator = counter

        start = time.perf_counter()
        output = trainer.train()
        train_seconds = time.perf_counter() - start

    logged_losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    peak_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    trl_defaults = {name: getattr(args, name) for name in DEFAULT_FIELDS}
    # SFTTrainer resolves completion_only_loss=None from the dataset's shape; record what it actually used.
    trl_defaults["completion_only_loss_resolved"] = getattr(trainer, "completion_only_loss", None)
    return {
        "tool": "trl.SFTTrainer+peft.LoRA",
        "model_dir": model_dir,
        "data": data,
        "examples": len(dataset),
        "epochs": epochs,
        "steps": trainer.state.global_step,
        "batches": counter.batches,
        "train_seconds": round(train_seconds, 3),
        "tokens": counter.tokens,
        "tokens_per_second": round(counter.tokens / train_seconds, 2) if train_seconds > 0 else None,
        "trainer_num_tokens": getattr(trainer, "_total_train_tokens", None),  # TRL's own count, as a cross-check
        "peak_rss_kib": peak_rss_kib,
        "peak_rss_mib": round(peak_rss_kib / 1024, 1),
        "train_loss": output.training_loss,  # mean over all steps of the run
        "final_logged_loss": logged_losses[-1] if logged_losses else None,  # last logging_steps window, if any
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
        "trl_defaults": trl_defaults,
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "peft": peft.__version__,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="local model folder (safetensors + tokenizer)")
    parser.add_argument("--data", required=True, help='chat JSONL, one {"messages": [...]} per line')
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-examples", type=int, default=None, help="train on the first N rows only")
    parser.add_argument("--json-out", type=Path, required=True)
    ns = parser.parse_args()
    print(describe(), flush=True)

    result = run(ns.model_dir, ns.data, ns.epochs, ns.max_examples)
    write_json_atomic(ns.json_out, result)
    d = result["trl_defaults"]
    print(
        f"trl-sft-baseline: {result['examples']} examples x {result['epochs']} epoch(s), {result['steps']} steps, "
        f"{result['tokens']} tokens in {result['train_seconds']:.1f} s = {result['tokens_per_second']} tok/s, "
        f"peak RSS {result['peak_rss_mib']} MiB, loss {result['train_loss']:.4f} "
        f"(batch {d['per_device_train_batch_size']}, max_length {d['max_length']}, packing {d['packing']}, "
        f"bf16 {d['bf16']}, grad ckpt {d['gradient_checkpointing']}) -> {ns.json_out}"
    )


if __name__ == "__main__":
    main()
