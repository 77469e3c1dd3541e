"""Quality bar of issue 4: train with selftune on Banking77, then exact-match intent accuracy on a
fixed 500-row sample of the test split (greedy decoding). The test split is only ever scored here,
never used to choose settings (those were chosen on valid_200.jsonl).

    .venv/bin/python bench/banking77_quality.py --train train.jsonl --time-budget 10m
    .venv/bin/python bench/banking77_quality.py --train train_1k.jsonl          # default settings
    .venv/bin/python bench/banking77_quality.py --score-only OUT_DIR --eval valid_200.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "banking77"
SAMPLE_SEED, SAMPLE_SIZE = 77, 500


def load_rows(path: Path, sample: int | None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if sample and sample < len(rows):
        rows = random.Random(SAMPLE_SEED).sample(rows, sample)
    return rows


def score(out_dir: Path, rows: list[dict], batch_size: int = 32) -> dict:
    """Greedy answers of the trained model (adapter merged into the base) vs the reference label."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selftune.hardware import autocast_dtype, set_threads
    from selftune.models.resolve import resolve_model

    set_threads()
    dtype = autocast_dtype(torch.device("cpu"))  # bf16 where native; emulated bf16 is ~50x slower than fp32
    record = json.loads((out_dir / "training.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(out_dir, padding_side="left")
    base = AutoModelForCausalLM.from_pretrained(resolve_model(record["base_model"]), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, out_dir).merge_and_unload() if record["adapter"] else base
    model.eval()
    correct, started = 0, time.perf_counter()
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        prompts = [tokenizer.apply_chat_template(r["messages"][:-1], add_generation_prompt=True, tokenize=False)
                   for r in chunk]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            generated = model.generate(**enc, max_new_tokens=24, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)
        answers = tokenizer.batch_decode(generated[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        correct += sum(a.strip() == r["messages"][-1]["content"].strip() for a, r in zip(answers, chunk, strict=True))
    seconds = round(time.perf_counter() - started, 1)
    return {"rows": len(rows), "exact_match": correct / len(rows), "eval_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="train_1k.jsonl", help="file name under the Banking77 folder, or a path")
    parser.add_argument("--eval", default="test.jsonl")
    parser.add_argument("--sample", type=int, default=SAMPLE_SIZE)
    parser.add_argument("--score-only", type=Path, help="score an existing output folder")
    parser.add_argument("train_args", nargs="*", help="extra `selftune train` options, after --")
    args = parser.parse_args()
    from selftune.hardware import describe

    print(describe(), file=sys.stderr, flush=True)  # stdout is the JSON result
    eval_rows = load_rows(_path(args.eval), args.sample)
    if args.score_only:
        print(json.dumps(score(args.score_only, eval_rows)))
        return
    out = Path(tempfile.mkdtemp(prefix="b77-")) / "run"
    command = [sys.executable, "-m", "selftune.cli", "train", "--train", str(_path(args.train)), "--out", str(out),
               "--no-progress", *args.train_args]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    train_seconds = time.perf_counter() - started
    record = json.loads((out / "training.json").read_text())
    result = score(out, eval_rows)
    print(json.dumps({"train_file": args.train, "train_args": args.train_args, "wall_seconds": round(train_seconds, 1),
                      "train_seconds": record["seconds"], "trained_tokens": record["trained_tokens"],
                      "epochs_completed": record["epochs_completed"], "hyperparameters": record["hyperparameters"],
                      "tokens_per_second": record["tokens_per_second"], "eval_file": args.eval, **result,
                      "out": str(out)}))


def _path(name: str) -> Path:
    path = Path(name)
    return path if path.exists() else DATA / name


if __name__ == "__main__":
    main()
