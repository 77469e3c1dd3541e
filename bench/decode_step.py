"""Engine step latency: a decode step at batch 1/4/16 and the prefill of a ~100-token prompt, in process.

The embedded engine on SmolLM2-135M, no HTTP: each request decodes exactly ``--tokens`` tokens (stop
tokens are switched off for the bench) and every engine step is timed as the scheduler runs it, so a
decode step's figure includes everything the engine does per step (plan, forward, logits, sampling).
``--variant`` names engine settings to compare (A/B) in one process, interleaved, repeated
``--repeats`` times; medians are printed. Other processes on the machine make single figures noisy:
compare variants from the same run only.

    .venv/bin/python bench/decode_step.py [--dtype fp32 bf16] [--batch 1 4 16] [--variant lean hf]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from selftune.config import ServeWeights  # noqa: E402

MODEL = "smollm2-135m-instruct"
# a ~100-token prompt (the chat template adds ~30 tokens of system prompt)
QUESTION = ("My debit card was declined twice today at the supermarket although my balance is fine, and the app "
            "shows no blocked payments. I travelled abroad last week and used the card there without problems. "
            "Is there a daily limit I might have reached, or should I order a new card? What do you suggest?")
VARIANTS = {  # engine attributes set before the model loads
    "lean": {"fast_forward": True},
    "unpacked": {"fast_forward": True, "packed_weights": False},
    "hf": {"fast_forward": False},
    "int8": {"fast_forward": True, "weights": ServeWeights.INT8},  # SELFTUNE_SERVE_WEIGHTS=int8
}


def make_engine(dtype: str, variant: str, threads: int | None):
    from selftune.serve.embedded import EmbeddedEngine

    engine = EmbeddedEngine(dtype=dtype, kv_tokens=4096, step_tokens=512, threads=threads)
    for name, value in VARIANTS[variant].items():
        setattr(engine, name, value)
    return engine


def timed_steps(engine) -> list[tuple[int, int, float, float]]:
    """Wrap the engine's step: each records (running requests, tokens fed, seconds, CPU seconds of the engine
    thread). With one thread the CPU time is the step's own work, whatever else the machine runs."""
    records: list[tuple[int, int, float, float]] = []
    step = engine._step

    def timed():
        running = len(engine._running)
        fed = sum(len(s.ids) - s.past for s in engine._running)
        started, cpu = time.perf_counter(), time.thread_time()
        step()
        records.append((running, fed, time.perf_counter() - started, time.thread_time() - cpu))

    engine._step = timed
    return records


def run_batch(engine, model, prompt: list[int], batch: int, tokens: int) -> dict:
    from selftune.serve.engine import Finished, GenerationRequest, SamplingParams, Token

    done = [threading.Event() for _ in range(batch)]
    first: list[float | None] = [None] * batch
    records = timed_steps(engine)
    started = time.perf_counter()
    for i in range(batch):
        def emit(event, i=i):
            if isinstance(event, Token) and first[i] is None:
                first[i] = time.perf_counter() - started
            if isinstance(event, Finished):
                done[i].set()
        # each request its own prompt variant (a different last token), so no prefix is shared past the system
        engine.submit(GenerationRequest(model, prompt[:-1] + [prompt[-1] + i],
                                        SamplingParams(max_tokens=tokens, temperature=0.0)), emit)
    for event in done:
        event.wait(600)
    wall = time.perf_counter() - started
    engine._step = type(engine)._step.__get__(engine)
    decode = [(s, c) for running, fed, s, c in records if running == batch and fed == batch]
    prefill = [(s, c) for running, fed, s, c in records if fed > running]
    return {"decode_step_ms": 1000 * statistics.median(s for s, _ in decode) if decode else None,
            "decode_step_cpu_ms": 1000 * statistics.median(c for _, c in decode) if decode else None,
            "prefill_ms": 1000 * prefill[0][0] if prefill and batch == 1 else None,
            "prefill_cpu_ms": 1000 * prefill[0][1] if prefill and batch == 1 else None,
            "ttft_ms": 1000 * statistics.median(f for f in first if f is not None),
            "tok_s": batch * tokens / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--variant", nargs="+", default=["lean", "hf"], choices=sorted(VARIANTS))
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--adapter", type=Path, help="decode through this LoRA adapter (a fine-tuned model's or a "
                                                     "`selftune train` output folder), as a fine-tuned model is served")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the engine's choice); "
                        "with 1, the CPU-time columns are robust to other load on the machine")
    args = parser.parse_args()

    from selftune import hardware
    from selftune.models.chat_template import render_prompt
    from selftune.serve.engine import ServedModel

    print(hardware.describe(), f"· torch threads {args.threads or hardware.paths().threads}", flush=True)
    model = ServedModel(f"ft:{MODEL}:bench" if args.adapter else MODEL, MODEL, adapter=args.adapter)
    engines = {}
    for dtype in args.dtype:
        for variant in args.variant:
            engine = make_engine(dtype, variant, args.threads)
            engine._stops[engine._tokenizer_folder(model)] = set()  # every request decodes --tokens tokens
            prompt = render_prompt(engine.tokenizer(model), [{"role": "user", "content": QUESTION}])
            started = time.perf_counter()
            run_batch(engine, model, prompt, 1, 2)  # loads the model (and warms up)
            engines[dtype, variant] = engine
            print(f"# {dtype} {variant}: loaded and warmed in {time.perf_counter() - started:.1f} s, "
                  f"prompt {len(prompt)} tokens", flush=True)
    results: dict[tuple, list[dict]] = {}
    for _ in range(args.repeats):  # interleaved: A and B see the same background load
        for batch in args.batch:
            for (dtype, variant), engine in engines.items():
                engine.base.pool.by_hash.clear()  # no prefix cache: every prefill computes its prompt
                engine.base.pool.hash_of.clear()
                engine.base.pool.free_pages.extend(engine.base.pool.idle)
                engine.base.pool.idle.clear()
                row = run_batch(engine, model, prompt, batch, args.tokens)
                results.setdefault((dtype, variant, batch), []).append(row)
    for (dtype, variant, batch), rows in results.items():
        summary = {key: round(statistics.median(r[key] for r in rows), 1) if rows[0][key] is not None else None
                   for key in rows[0]}
        print(json.dumps({"dtype": dtype, "variant": variant, "batch": batch, **summary}), flush=True)
    for engine in engines.values():
        engine.close()


if __name__ == "__main__":
    main()
