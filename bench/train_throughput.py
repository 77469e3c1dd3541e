"""Training throughput: selftune against TRL's SFTTrainer + PEFT LoRA, same data, model, LoRA and epochs.

Runs each trainer in its own child process, one after the other (two trainers sharing a 2-core CPU
would measure contention, not speed), then prints tokens/s of each, the ratio, peak RSS of each, and
selftune's fraction of this machine's matmul peak in the precision it trains in, measured in the same run.

    .venv/bin/python bench/train_throughput.py [--examples 256] [--epochs 1] [--skip-trl]
        [--precision fp32] [--lora-layers 0 20 10]

``--precision fp32`` trains as an AVX2-only CPU does (no bf16) on any CPU; ``--lora-layers`` runs selftune
once per value (0: every layer, N: the top N; the ``lora_layers`` lever), all in the same run.

Tokens are the examples' tokens (prompt and answer, no padding) that training went through, counted
the same way for both. selftune's FLOPs are counted with torch's FlopCounterMode on a sample of its
own steps after the timed run (matmuls only, which is what the peak measures).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "banking77" / "train_1k.jsonl"
MODEL = "smollm2-135m-instruct"


def matmul_peak_gflops(precision: str, seconds: float = 3.0) -> float:
    """Best matmul rate in the training precision over shapes like the model's projections (576 x 1536
    at 2048 tokens)."""
    from selftune.hardware import matmul_gflops, set_threads

    set_threads()
    return matmul_gflops(precision, [(2048, 576, 1536), (2048, 1536, 576), (2048, 576, 576)], seconds)


def run_selftune(data: Path, epochs: int, json_out: Path, precision: str = "auto", lora_layers: int = 0) -> None:
    """Child process: one selftune LoRA run (rank 16, all linear layers, on every decoder layer or the top
    ``lora_layers``), then a FLOP count."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from selftune.train import TrainConfig
    from selftune.train.output import write_output
    from selftune.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(model=MODEL, train_file=data, out=Path(out), n_epochs=epochs, lora_rank=16,
                             lora_targets="all-linear", precision=precision, lora_layers=lora_layers or None)
        trainer = Trainer(config)
        trainer.setup()
        result = trainer.train()
        write_output(trainer, result)
        state = result.state
        sample = trainer.epoch_plans[0][:4]
        counter = FlopCounterMode(display=False)
        with counter:
            for step in sample:
                trainer._step(step)
        sample_tokens = sum(trainer.lengths[i] for step in sample for i in step)
        flops = counter.get_total_flops() / sample_tokens * state.tokens_seen
        record = json.loads((Path(out) / "training.json").read_text())
    json_out.write_text(json.dumps({
        "tool": "selftune", "examples": len(trainer.train_data), "epochs": epochs, "steps": state.global_step,
        "train_seconds": round(state.elapsed, 2), "tokens": state.tokens_seen,
        "tokens_per_second": round(state.tokens_seen / state.elapsed, 1),
        "tokens_per_step": trainer.tokens_per_step, "matmul_gflops_per_second": round(flops / state.elapsed / 1e9, 1),
        "train_loss": state.results[-1]["train_loss"], "precision": record["machine"]["precision"],
        "lora_layers": lora_layers or "all",
        "threads": torch.get_num_threads(),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def child(args: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    subprocess.run([sys.executable, *args, "--json-out", str(out)], check=True, cwd=ROOT)
    result = json.loads(out.read_text())
    out.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--examples", type=int, default=256, help="first N examples of the file (TRL is slow)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--lora-layers", type=int, nargs="+", default=[0], help="0: every layer; N: the top N")
    parser.add_argument("--child", choices=["selftune"], help=argparse.SUPPRESS)
    parser.add_argument("--json-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "selftune":
        run_selftune(args.data, args.epochs, args.json_out, args.precision, args.lora_layers[0])
        return

    from selftune.hardware import describe, paths

    print(describe(), flush=True)
    precision = paths().precision if args.precision == "auto" else args.precision
    lines = args.data.read_text(encoding="utf-8").splitlines()[: args.examples]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        data.write_text("\n".join(lines) + "\n", encoding="utf-8")
        from selftune.models.resolve import resolve_model

        model_dir = resolve_model(MODEL)
        peak = matmul_peak_gflops(precision)
        runs = [child([__file__, "--child", "selftune", "--data", str(data), "--epochs", str(args.epochs),
                       "--precision", args.precision, "--lora-layers", str(layers)]) for layers in args.lora_layers]
        ours = runs[0]
        trl = None if args.skip_trl else child([
            str(ROOT / "bench" / "trl_sft_baseline.py"), "--model-dir", str(model_dir), "--data", str(data),
            "--epochs", str(args.epochs), "--max-examples", str(args.examples)])

    print(f"{date.today()} · {describe()} · "
          f"{len(lines)} examples of {args.data.name} x {args.epochs} epoch(s), LoRA r16 all-linear")
    print(f"{precision} matmul peak: {peak:,.0f} GFLOP/s")
    for one in runs:
        print(f"selftune (LoRA on {one['lora_layers']} layers): {one['tokens_per_second']:,.0f} tokens/s "
              f"({one['tokens']:,} tokens, {one['train_seconds']} s, final train loss {one['train_loss']:.3f}), "
              f"peak RSS {one['peak_rss_mib']:,.0f} MiB, matmuls at {one['matmul_gflops_per_second']:,.0f} GFLOP/s = "
              f"{one['matmul_gflops_per_second'] / peak:.0%} of peak")
    if trl:
        print(f"TRL SFTTrainer: {trl['tokens_per_second']:,.0f} tokens/s ({trl['tokens']:,} tokens, "
              f"{trl['train_seconds']} s), peak RSS {trl['peak_rss_mib']:,.0f} MiB")
        print(f"ratio: {ours['tokens_per_second'] / trl['tokens_per_second']:.1f}x the tokens/s, "
              f"{ours['peak_rss_mib'] / trl['peak_rss_mib']:.2f}x the memory")
    print(json.dumps({"machine": describe(), "peak_precision": precision, "peak_gflops": round(peak, 1),
                      "selftune": ours, "selftune_runs": runs, "trl": trl}))


if __name__ == "__main__":
    main()
