"""selftune's embedded engine against llama.cpp: same model, same prompts, same machine, one run.

Both run in this process, on the same token ids (the chat-rendered prompts of bench/serve.py) and the
same number of threads, greedy, each request producing exactly ``--max-tokens`` tokens (end-of-turn
ignored, so both do the same work), every prompt computed cold (no prefix cache on either side).

- selftune: the embedded engine (``--dtype``: what ``selftune serve`` picks on this CPU, or forced),
  one client (requests one after another) and ``--clients`` clients at once (continuous batching).
- llama.cpp through llama-cpp-python: the bundled Q4_1 GGUF (the very weights selftune dequantizes
  at load) and the same weights re-encoded as F32 and BF16 GGUFs (``llama_model_quantize``; F32 is
  what selftune's fp32 path computes with). llama-cpp-python's ``Llama`` holds one sequence, so many
  clients queue behind each other: its one-client figure is also its aggregate.

Prints the CPU, each side's time to first token (p50) and decode tokens/s, and selftune / llama.cpp.
llama-cpp-python is optional (``pip install llama-cpp-python``, it builds llama.cpp from source for
this CPU): without it, only selftune's side is measured.

    .venv/bin/python bench/serve_vs_llamacpp.py [--max-tokens 64] [--clients 16] [--gguf q4_1 q8_0 f32 bf16]
        [--dtype auto fp32] [--weights full int8]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from selftune.config import ServeWeights  # noqa: E402

MODEL = "smollm2-135m-instruct"


def prompts_for(tokenizer) -> list[list[int]]:
    from selftune.models.chat_template import render_prompt
    from serve import QUESTIONS, SYSTEM  # bench/serve.py: the same prompts as the serving benchmark

    return [render_prompt(tokenizer, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}])
            for q in QUESTIONS]


def summary(records: list[dict], wall: float) -> dict:
    decode = [(r["tokens"] - 1) / (r["total"] - r["ttft"]) for r in records if r["tokens"] > 1]
    return {"requests": len(records), "ttft_p50_ms": round(1000 * statistics.median(r["ttft"] for r in records), 1),
            "decode_tok_s": round(statistics.median(decode), 1),
            "aggregate_tok_s": round(sum(r["tokens"] for r in records) / wall, 1)}


# ---- selftune ------------------------------------------------------------------------------------------
def selftune_side(dtype: str, weights: str, max_tokens: int, clients: int, per_client: int, repeats: int) -> dict:
    from selftune.serve.embedded import EmbeddedEngine
    from selftune.serve.engine import Finished, GenerationRequest, SamplingParams, ServedModel, Token

    engine = EmbeddedEngine(dtype=dtype, weights=weights)
    model = ServedModel(MODEL, MODEL)
    engine._stops[engine._tokenizer_folder(model)] = set()  # exactly max_tokens tokens, as llama.cpp's side
    prompts = prompts_for(engine.tokenizer(model))

    def one_request(prompt: list[int]) -> dict:
        done, record, started = threading.Event(), {"tokens": 0}, time.perf_counter()

        def emit(event):
            if isinstance(event, Token) and event.choice is not None:
                record["tokens"] += 1
                record.setdefault("ttft", time.perf_counter() - started)
            elif isinstance(event, Finished):
                record["total"] = time.perf_counter() - started
                done.set()
        engine.submit(GenerationRequest(model, prompt, SamplingParams(max_tokens=max_tokens, temperature=0.0)), emit)
        done.wait(600)
        return record

    def load(concurrency: int, count: int) -> dict:
        records, lock = [], threading.Lock()

        def client(c: int):
            for r in range(count):
                pool = engine.base.pool  # cold prompts: forget cached prefixes (nothing else is running)
                with lock:
                    if not engine._running:
                        pool.free_pages.extend(pool.idle)
                        pool.idle.clear(), pool.by_hash.clear(), pool.hash_of.clear()
                record = one_request(prompts[(c + r) % len(prompts)])
                with lock:
                    records.append(record)

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return summary(records, time.perf_counter() - started)

    started = time.perf_counter()
    one_request(prompts[0])  # loads the model
    loaded = time.perf_counter() - started
    results = {"one": [], "many": []}
    for _ in range(repeats):
        results["one"].append(load(1, max(per_client, len(prompts))))
        results["many"].append(load(clients, per_client))
    engine.close()
    return {"dtype": str(engine.dtype).removeprefix("torch."), "weights": weights, "load_s": round(loaded, 1),
            "one_client": median_row(results["one"]), f"{clients}_clients": median_row(results["many"])}


def median_row(rows: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]}


# ---- llama.cpp -----------------------------------------------------------------------------------------
def gguf_files(kinds: list[str], workdir: Path) -> dict[str, Path]:
    """The bundled Q4_1 GGUF and, re-encoded from it by llama.cpp's own quantizer, F32/BF16/F16/Q8_0 ones."""
    import llama_cpp

    from selftune.models.registry import BUNDLED_MODELS

    bundled = BUNDLED_MODELS[MODEL].gguf_path()
    files = {}
    for kind in kinds:
        if kind == "q4_1":
            files[kind] = bundled
            continue
        target = workdir / f"{MODEL}.{kind}.gguf"
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = {"f32": llama_cpp.LLAMA_FTYPE_ALL_F32, "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
                        "bf16": llama_cpp.LLAMA_FTYPE_MOSTLY_BF16, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}[kind]
        params.allow_requantize = True  # Q4_1 -> dequantized -> the target type
        with quiet_stderr():  # llama.cpp logs every tensor it converts
            failed = llama_cpp.llama_model_quantize(str(bundled).encode(), str(target).encode(), ctypes.byref(params))
        if failed:
            print(f"# llama.cpp could not write a {kind} GGUF: skipped", flush=True)
            continue
        files[kind] = target
    return files


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (C code's logging) while inside."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def llamacpp_side(path: Path, prompts: list[list[int]], max_tokens: int, threads: int, repeats: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads,
                verbose=False)

    def one_request(prompt: list[int]) -> dict:
        llm.reset()  # cold: the prompt is computed again, as on selftune's side
        record, started = {"tokens": 0}, time.perf_counter()
        for _ in llm.generate(prompt, temp=0.0, reset=True):  # greedy; never stops by itself
            record["tokens"] += 1
            record.setdefault("ttft", time.perf_counter() - started)
            if record["tokens"] == max_tokens:
                break
        record["total"] = time.perf_counter() - started
        return record

    one_request(prompts[0])  # warm-up
    rows = []
    for _ in range(repeats):
        started = time.perf_counter()
        records = [one_request(p) for p in prompts * 2]
        rows.append(summary(records, time.perf_counter() - started))
    return median_row(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=2, help="requests each of the many clients sends")
    parser.add_argument("--dtype", nargs="+", default=["auto"], help="selftune's serving dtype(s): auto, fp32, bf16")
    parser.add_argument("--weights", nargs="+", default=["full"], choices=[w.value for w in ServeWeights],
                        help="selftune's SELFTUNE_SERVE_WEIGHTS setting(s), each with every --dtype")
    parser.add_argument("--gguf", nargs="+", default=["q4_1", "f32", "bf16"],
                        choices=["q4_1", "q8_0", "f32", "f16", "bf16"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    from selftune import hardware

    print(hardware.describe(), flush=True)
    threads = hardware.paths().threads
    rows = []
    for dtype in args.dtype:
        for weights in args.weights:
            row = {"engine": "selftune", **selftune_side(dtype, weights, args.max_tokens, args.clients,
                                                          args.per_client, args.repeats)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    try:
        import llama_cpp
    except ImportError:
        print("# llama.cpp skipped: llama-cpp-python is not installed (pip install llama-cpp-python; it builds "
              "llama.cpp for this CPU)", flush=True)
        return
    from transformers import AutoTokenizer

    from selftune.models.resolve import resolve_model

    prompts = prompts_for(AutoTokenizer.from_pretrained(resolve_model(MODEL)))
    with tempfile.TemporaryDirectory() as workdir:
        for kind, path in gguf_files(args.gguf, Path(workdir)).items():
            row = {"engine": f"llama.cpp {llama_cpp.__version__}", "gguf": kind,
                   **llamacpp_side(path, prompts, args.max_tokens, threads, args.repeats)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\nselftune / llama.cpp (one client: decode tokens/s, TTFT; many clients: aggregate tokens/s)")
    for mine in (r for r in rows if r["engine"] == "selftune"):
        one, many = mine["one_client"], mine[f"{args.clients}_clients"]
        for theirs in (r for r in rows if r["engine"] != "selftune"):
            print(f"  selftune {mine['dtype']:>8} {mine['weights']:>4} vs llama.cpp {theirs['gguf']:>4}: "
                  f"decode {one['decode_tok_s'] / theirs['decode_tok_s']:.2f}x "
                  f"({one['decode_tok_s']} vs {theirs['decode_tok_s']} tok/s), "
                  f"TTFT {one['ttft_p50_ms'] / theirs['ttft_p50_ms']:.1f}x "
                  f"({one['ttft_p50_ms']} vs {theirs['ttft_p50_ms']} ms), "
                  f"{args.clients} clients {many['aggregate_tok_s'] / theirs['aggregate_tok_s']:.2f}x "
                  f"({many['aggregate_tok_s']} vs {theirs['aggregate_tok_s']} tok/s)")


if __name__ == "__main__":
    main()
