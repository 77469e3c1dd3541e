"""Learning curve of issue 19: structured extraction (restaurant description -> JSON attributes).

For each training budget, ``selftune train --time-budget`` on the restaurants training pool, the adapter
merged and served by a selftune server of its own; then ``selftune eval``'s evaluate() on a seeded
sample of the test split with and without the JSON schema at decoding (``--schema``): valid JSON,
exact-object match and field F1, each with its 95% interval. Last, the base model with a 10-shot prompt
from the training file, with and without the schema, on the same rows: its prompt tokens beside the
fine-tuned model's. The test split is only scored here, never used to choose settings.

    .venv/bin/python bench/restaurants_curve.py                       # 2, 5, 10, 30 min; 500 rows (> 1 h)
    .venv/bin/python bench/restaurants_curve.py --minutes 0.3 --rows 20   # a smoke run
    .venv/bin/python bench/restaurants_curve.py --minutes 5 -- --batch-size 4   # extra `selftune train` options
    .venv/bin/python bench/restaurants_curve.py --minutes 4 --eval valid_200.jsonl --few-shot 0 -- --lora-layers 10
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

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "restaurants"
BASE = "smollm2-135m-instruct"
SEED = 19


def train(budget_min: float, train_file: Path, out: Path, extra: list[str]) -> dict:
    """One budget: train, then merge the adapter into a folder the server loads as a base model."""
    run = out / f"run-{budget_min:g}m"
    subprocess.run([sys.executable, "-m", "selftune.cli", "train", "--train", str(train_file), "--out", str(run),
                    "--time-budget", f"{budget_min * 60:.0f}", "--seed", "0", "--no-progress", *extra], check=True)
    subprocess.run([sys.executable, "-m", "selftune.cli", "export", str(run), "--merge", "--out", str(run / "merged")],
                   check=True, stdout=subprocess.DEVNULL)
    record = json.loads((run / "training.json").read_text())
    return {"minutes": budget_min, "folder": run / "merged", "train_seconds": record["seconds"],
            "epochs": record["epochs_completed"], "tokens_per_second": record["tokens_per_second"],
            "hyperparameters": record["hyperparameters"]}


def figures(row) -> dict:
    """What the curve plots from one row of the report."""
    q = row.quality["json"]
    return {"name": row.name, "kind": row.kind, "valid_json": q.valid_json["value"],
            "exact": q.exact_match["value"], "exact_ci95": q.exact_match["ci95"],
            "field_f1": q.fields["f1"]["value"], "field_f1_ci95": q.fields["f1"]["ci95"],
            "prompt_tokens": row.prompt_tokens, "latency_p50_s": row.latency_s.p50}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[2, 5, 10, 30], help="training budgets")
    parser.add_argument("--rows", type=int, default=500, help="test rows (a seeded sample)")
    parser.add_argument("--data", type=Path, default=DATA, help="the restaurants folder")
    parser.add_argument("--train", default="train.jsonl", help="training file in --data")
    parser.add_argument("--eval", default="test.jsonl", help="scored file in --data (valid_200.jsonl to choose "
                                                              "settings; the test split only for the figures)")
    parser.add_argument("--few-shot", type=int, default=10, help="shots of the base model's prompt (0: no base row)")
    parser.add_argument("--out", type=Path, help="work folder (default: a new temporary one)")
    parser.add_argument("train_args", nargs="*", help="extra `selftune train` options, after --")
    args = parser.parse_args()
    from selftune.evals import EvalConfig, evaluate
    from selftune.evals.local_server import local_server
    from selftune.hardware import describe

    print(describe(), flush=True)
    out = args.out or Path(tempfile.mkdtemp(prefix="restaurants-curve-"))
    os.environ["SELFTUNE_HOME"] = str(out / "home")  # a server of its own: its models, never another's
    runs = [train(m, args.data / args.train, out, args.train_args) for m in args.minutes]
    os.environ["SELFTUNE_BASE_MODELS"] = ",".join(f"restaurants-{r['minutes']:g}m={r['folder']}" for r in runs)
    common = {"data": args.data / args.eval, "limit": args.rows, "seed": SEED,
              "schema_file": args.data / "schema.json", "concurrency": 8}
    rows = []
    with local_server(out / "server.log", reuse_default=False) as url:
        for r in runs:  # one report per budget: the merged models are base models to the server, given no shots
            started = time.perf_counter()
            report = evaluate(EvalConfig(models=[f"restaurants-{r['minutes']:g}m"], base_url=url,
                                         out=out / f"eval-{r['minutes']:g}m", **common))
            for row in report.models:
                rows.append({**figures(row), **{k: v for k, v in r.items() if k != "folder"},
                             "eval_seconds": round(time.perf_counter() - started, 1)})
        if args.few_shot:
            report = evaluate(EvalConfig(models=[BASE], few_shot=args.few_shot, few_shot_from=args.data / args.train,
                                         base_url=url, out=out / "eval-base", **common))
            rows += [figures(row) for row in report.models]
    print(f"\n{args.rows} test rows (seed {SEED}), greedy; training: selftune train {' '.join(args.train_args)}")
    print(f"{'model':<44} {'train':>7} {'epochs':>6} {'valid':>6} {'exact (95% CI)':>20} {'field F1 (95% CI)':>22} "
          f"{'prompt tok':>10}")
    for row in rows:
        trained = f"{row['train_seconds']:.0f} s" if "train_seconds" in row else "–"
        epochs = f"{row['epochs']:.2f}" if "epochs" in row else "–"
        exact = f"{row['exact']:.1%} ({row['exact_ci95'][0]:.1%}–{row['exact_ci95'][1]:.1%})"
        f1 = f"{row['field_f1']:.3f} ({row['field_f1_ci95'][0]:.3f}–{row['field_f1_ci95'][1]:.3f})"
        print(f"{row['name']:<44} {trained:>7} {epochs:>6} {row['valid_json']:>6.1%} {exact:>20} {f1:>22} "
              f"{row['prompt_tokens']:>10.0f}")
    (out / "curve.json").write_text(json.dumps(rows, indent=1, default=str))
    print(f"\nall figures: {out / 'curve.json'}")


if __name__ == "__main__":
    main()
