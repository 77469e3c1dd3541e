"""``make demo``: the pipeline on real data — check and measure Banking77, then fine-tune on it.

The data comes from ``../shared/data/banking77`` when the project sits beside it, otherwise from
``$SELFTUNE_DEMO_DATA``, otherwise it is downloaded once from its public source (PolyAI's
task-specific-datasets, CC BY 4.0) into ``$SELFTUNE_HOME/datasets/banking77``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path

from rich.console import Console

from selftune.config import get_settings
from selftune.errors import SelftuneError
from selftune.store.atomic import atomic_write
from selftune.store.build_once import build_once

SOURCE = "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/master/banking_data"
SYSTEM_PROMPT = ("Classify the customer's banking message into exactly one intent label. "
                 "Answer with the label only.")
TRAIN_BUDGET = "3m"
PER_INTENT = 13  # train_1k.jsonl: 13 examples for each of the 77 intents
PROJECT_ROOT = Path(__file__).resolve().parents[2]

console = Console(highlight=False, soft_wrap=True)


def banking77_dir() -> Path:
    """A folder with train_1k.jsonl and test.jsonl, found or built."""
    candidates = [os.environ.get("SELFTUNE_DEMO_DATA"), PROJECT_ROOT.parent / "shared" / "data" / "banking77"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train_1k.jsonl").is_file():
            return Path(candidate)
    return build_once(get_settings().home.expanduser() / "datasets" / "banking77", _download_banking77)


def _download_banking77(folder: Path) -> None:
    """Fetch the original CSVs and write the chat files the way ../shared/data does."""
    console.print(f"downloading Banking77 from {SOURCE} ...")
    splits = {}
    for name in ("train", "test"):
        try:
            with urllib.request.urlopen(f"{SOURCE}/{name}.csv", timeout=60) as response:
                text = response.read().decode("utf-8")
        except OSError as exc:
            raise SelftuneError(f"could not download Banking77 ({exc}); put train_1k.jsonl and test.jsonl "
                                "in a folder and point SELFTUNE_DEMO_DATA at it") from None
        (folder / f"{name}.csv").write_text(text)
        splits[name] = [(row["text"], row["category"]) for row in csv.DictReader(io.StringIO(text))]

    rng = random.Random(0)
    train = splits["train"][:]
    rng.shuffle(train)
    by_intent = defaultdict(list)
    for text, intent in train:
        by_intent[intent].append((text, intent))
    train_1k = [row for intent in sorted(by_intent) for row in by_intent[intent][:PER_INTENT]]
    rng.shuffle(train_1k)
    for name, rows in (("train.jsonl", train), ("train_1k.jsonl", train_1k), ("test.jsonl", splits["test"])):
        with atomic_write(folder / name) as f:
            for text, intent in rows:
                f.write(json.dumps({"messages": [{"role": "system", "content": SYSTEM_PROMPT},
                                                 {"role": "user", "content": text},
                                                 {"role": "assistant", "content": intent}]}) + "\n")


def _selftune(*args: str) -> None:
    """Run a selftune command as the user would type it, showing the command first."""
    console.print(f"\n[bold cyan]$ selftune {' '.join(args)}[/]")
    result = subprocess.run([sys.executable, "-m", "selftune.cli", *args])
    if result.returncode != 0:
        raise SystemExit(result.returncode)


def main() -> None:
    data = banking77_dir()
    train = Path(os.path.relpath(data / "train_1k.jsonl"))
    console.print(f"[bold]selftune demo — stage 1: prepare data[/]  (Banking77 from {data})")
    _selftune("models", "list")
    _selftune("data", "check", str(train))
    _selftune("data", "stats", str(train))

    console.print(f"\n[bold]stage 2: train[/] a LoRA adapter within a {TRAIN_BUDGET} budget")
    out = get_settings().home.expanduser() / "demo" / "banking77-lora"
    shutil.rmtree(out, ignore_errors=True)  # the demo's own folder: start afresh each time
    _selftune("train", "--train", str(train), "--time-budget", TRAIN_BUDGET, "--out", str(out))
    _show_answers(out, data / "test.jsonl")
    console.print("\n[bold]Next stages[/] (evaluation, serving) arrive with the issues that build them; "
                  "see README.md.")


def _show_answers(out: Path, test_file: Path, n: int = 8) -> None:
    """A first look at what training bought: the adapter's answers to a few held-out messages."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from selftune.models.resolve import resolve_model

    transformers_logging.disable_progress_bar()
    lines = test_file.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in random.Random(0).sample(lines, n)]  # the file is sorted by intent
    tokenizer = AutoTokenizer.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m-instruct"), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, out).eval()
    console.print(f"\n[bold]held-out messages[/] ({test_file.name}), answered by the fine-tuned adapter:")
    right = 0
    for row in rows:
        ids = tokenizer.apply_chat_template(row["messages"][:-1], add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        with torch.no_grad():
            generated = model.generate(**ids, max_new_tokens=24, do_sample=False)
        answer = tokenizer.decode(generated[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        expected = row["messages"][-1]["content"]
        right += answer == expected
        mark = "[green]✓[/]" if answer == expected else f"[red]✗[/] (expected {expected})"
        console.print(f"  {row['messages'][1]['content'][:60]!r:64} → {answer} {mark}")
    console.print(f"  {right} of {len(rows)} right")


if __name__ == "__main__":
    try:
        main()
    except SelftuneError as exc:
        console.print(f"error: {exc}", markup=False)
        sys.exit(2)
