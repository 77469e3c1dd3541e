"""How close is `selftune data stats`' training-time estimate to a real run on this machine?

In a fresh SELFTUNE_HOME: converts the bundled model (a one-time cost, timed apart), runs
`selftune data stats` on Banking77 train_1k (its first run times a few trainer steps), then a real
`selftune train` with the demo job's settings (LoRA, everything auto, seed 0) and prints the
estimate against the truth, with the CPU they ran on.

    .venv/bin/python bench/estimate_accuracy.py [--no-train] [--precision auto|fp32] [--data FILE]

``--precision fp32`` emulates a CPU without native bf16 (an AVX2-only laptop) on this one: the
estimate's measurement and the real run both take the fp32 path. Run it alone: another process on
the same cores slows both the measurement and the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selftune.hardware import describe

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "banking77" / "train_1k.jsonl"
MODEL = "smollm2-135m-instruct"

# `selftune data stats` in a child, with the hardware's bf16 decision forced off for --precision fp32
STATS = """
import sys
if sys.argv[1] == "fp32":  # as on an AVX2-only CPU: no native bf16, so the hardware chooses fp32
    import dataclasses
    import selftune.hardware as hardware
    real = hardware.cpu()
    native = {"avx512_bf16", "amx_bf16", "amx_tile", "bf16"}
    hardware.cpu = lambda: dataclasses.replace(real, features=frozenset(real.features - native))
from selftune.cli import app
sys.argv = ["selftune", "data", "stats", sys.argv[2], "--model", sys.argv[3], "--json"]
app()
"""


def timed(command: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed:\n{result.stderr[-3000:]}")
    return seconds, result.stdout


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--precision", choices=["auto", "fp32"], default="auto")
    parser.add_argument("--train", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the real training the estimate is for (minutes)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="selftune-estimate-") as home:
        env = {**os.environ, "SELFTUNE_HOME": home, "PYTHONPATH": str(ROOT / "src")}
        python = sys.executable
        print(f"{describe()}; precision {args.precision}; {args.data.name}; {args.model}")
        convert, _ = timed([python, "-c", f"from selftune.models import resolve_model; resolve_model({args.model!r})"],
                           env)
        print(f"model conversion (once per home): {convert:.1f} s")

        first, output = timed([python, "-c", STATS, args.precision, str(args.data), args.model], env)
        estimate = json.loads(output)["estimate"]
        again, _ = timed([python, "-c", STATS, args.precision, str(args.data), args.model], env)
        print(f"data stats, first run (measures): {first:.1f} s; cached: {again:.1f} s; "
              f"the measurement itself ~{first - again:.1f} s")
        print(f"estimate: {minutes(estimate['seconds'])} = {estimate['training_tokens']:,} training tokens "
              f"at {estimate['tokens_per_second']:,.0f} tokens/s ({estimate['machine']})")
        if not args.train:
            return

        out = Path(home) / "run"
        wall, _ = timed([python, "-m", "selftune.cli", "train", "--model", args.model, "--train", str(args.data),
                         "--out", str(out), "--seed", "0", "--precision", args.precision], env)
        trained = json.loads(timed([python, "-c", STATS, args.precision, str(args.data), args.model], env)[1])
        speed = trained["estimate"]["tokens_per_second"]  # the real run's figure, recorded by the run
        ratio = estimate["seconds"] / wall
        print(f"real run: {minutes(wall)} wall (setup included) at {speed:,.0f} tokens/s of training")
        print(f"estimate / truth: {ratio:.2f}x ({'within' if 0.5 <= ratio <= 2 else 'NOT within'} 2x)")


if __name__ == "__main__":
    main()
