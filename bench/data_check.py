"""How fast `selftune data check` and `selftune data stats` go, and how much memory check needs.

Usage: .venv/bin/python bench/data_check.py [--mb 300]
Writes a JSONL file of Banking77-shaped lines (repeating ../shared/data/banking77/train.jsonl when
present), then times the format check, the check with the model's context-length warning, and the
token statistics of train_1k.jsonl. Figures go to docs/benchmarks.md by hand, with date and machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from selftune.data import check
from selftune.data.stats import stats
from selftune.hardware import describe
from selftune.models import DEFAULT_MODEL

BANKING77 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77"


def sample_lines() -> list[str]:
    source = BANKING77 / "train.jsonl"
    if source.is_file():
        return source.read_text().splitlines()
    system = {"role": "system", "content": "Classify the customer's banking message into exactly one intent label."}
    return [json.dumps({"messages": [system, {"role": "user", "content": f"where is my card number {i}?"},
                                     {"role": "assistant", "content": "card_arrival"}]}) for i in range(1000)]


def timed(label: str, fn, size_mb: float | None = None, lines: int | None = None):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    rates = []
    if size_mb:
        rates.append(f"{size_mb / seconds:,.0f} MB/s")
    if lines:
        rates.append(f"{lines / seconds:,.0f} lines/s")
    print(f"{label}: {seconds:.2f} s ({', '.join(rates)})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=300, help="size of the generated file")
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d')} · {describe()}")

    lines = sample_lines()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        written = 0
        with open(path, "w") as f:
            while f.tell() < args.mb * 2**20:
                f.write(lines[written % len(lines)] + "\n")
                written += 1
        size_mb = path.stat().st_size / 2**20
        print(f"file: {size_mb:,.0f} MB, {written:,} lines")
        report = timed("check (format)", lambda: check(path), size_mb, written)
        assert report.valid, report.errors[:3]
        print(f"peak RSS after the format check: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        timed(f"check + context-length warning ({DEFAULT_MODEL})", lambda: check(path, model=DEFAULT_MODEL),
              size_mb, written)

    if (BANKING77 / "train_1k.jsonl").is_file():
        result = timed("stats of train_1k.jsonl (tokenizer + chat template + loss mask)",
                       lambda: stats(BANKING77 / "train_1k.jsonl", DEFAULT_MODEL, measure_speed=False),
                       lines=1001)
        print(f"  {result.total_tokens:,} tokens, {result.trained_tokens:,} trained")


if __name__ == "__main__":
    main()
