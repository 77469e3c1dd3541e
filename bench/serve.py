"""Serving throughput and latency: selftune's engine against a naive server, through the openai SDK.

Starts ``selftune serve`` on SmolLM2-135M with four LoRA adapters (four short fine-tuning jobs run
through the API first), then for concurrency 1, 4 and 16, with requests on one adapter and spread
over four, measures time to first token (p50/p95, streaming), per-request decode tokens/s and
aggregate tokens/s. The baseline is what a quick FastAPI wrapper does: one ``model.generate`` per
request behind a lock (PEFT ``set_adapter`` per request), non-streaming, so its TTFT is its latency.

    .venv/bin/python bench/serve.py [--requests-per-client 2] [--max-tokens 64] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import openai
from servers import start_server

from selftune.evals.local_server import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODEL = "smollm2-135m-instruct"
SYSTEM = ("You are the support assistant of a retail bank. Answer the customer's question in one or two short, "
          "friendly sentences. Never ask for a full card number or a PIN. If the question is about a lost or "
          "stolen card, tell the customer to freeze the card in the app first.")
QUESTIONS = ["My card still hasn't arrived after two weeks, what should I do?",
             "How can I top up my account using a bank transfer from another bank?",
             "Why was I charged a fee when I withdrew cash abroad last weekend?",
             "I think someone used my card without permission, can you help me?"]


def start_bench_server(home: Path, port: int) -> subprocess.Popen:
    return start_server(home, port, {**os.environ, "SELFTUNE_HOME": str(home), "HF_HUB_OFFLINE": "1"}, "bench")


def train_adapters(client: openai.OpenAI, count: int, workdir: Path) -> list[str]:
    """``count`` small fine-tuning jobs through the API (one epoch on 24 examples each)."""
    from tests.conftest import write_jsonl

    models = []
    for k in range(count):
        rows = [{"messages": [{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": f"{QUESTIONS[i % 4]} (case {k}-{i})"},
                              {"role": "assistant", "content": f"Team {k} here: we are on it, case {k}-{i}."}]}
                for i in range(24)]
        path = write_jsonl(workdir / f"train{k}.jsonl", rows)
        file = client.files.wait_for_processing(client.files.create(file=open(path, "rb"), purpose="fine-tune").id)
        job = client.fine_tuning.jobs.create(model=MODEL, training_file=file.id, suffix=f"team{k}", seed=k,
                                             hyperparameters={"n_epochs": 1})  # seeded: the same answers each run
        while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
            time.sleep(1)
        assert job.status == "succeeded", job.error
        models.append(job.fine_tuned_model)
    return models


def run_load(client: openai.OpenAI, models: list[str], concurrency: int, per_client: int, max_tokens: int,
             stream: bool) -> dict:
    """``concurrency`` clients, each sending ``per_client`` requests one after another."""
    records, lock = [], threading.Lock()

    def one_client(c: int) -> None:
        for r in range(per_client):
            model = models[(c + r) % len(models)]
            messages = [{"role": "system", "content": SYSTEM},
                        {"role": "user", "content": QUESTIONS[(c + r) % 4]}]
            started = time.perf_counter()
            first, tokens = None, 0
            if stream:
                for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                            temperature=0, stream=True,
                                                            stream_options={"include_usage": True}):
                    if first is None and chunk.choices and chunk.choices[0].delta.content:
                        first = time.perf_counter() - started
                    if chunk.usage:
                        tokens = chunk.usage.completion_tokens
            else:
                answer = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                        temperature=0)
                tokens = answer.usage.completion_tokens
            total = time.perf_counter() - started
            first = total if first is None else first
            with lock:
                records.append({"ttft": first, "total": total, "tokens": tokens})

    started = time.perf_counter()
    threads = [threading.Thread(target=one_client, args=(c,)) for c in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ttfts = sorted(r["ttft"] for r in records)
    decode = [r["tokens"] / (r["total"] - r["ttft"]) for r in records if r["total"] > r["ttft"] and r["tokens"] > 1]
    return {"requests": len(records), "tokens": sum(r["tokens"] for r in records),
            "ttft_p50_ms": 1000 * statistics.median(ttfts),
            "ttft_p95_ms": 1000 * ttfts[min(len(ttfts) - 1, math.ceil(0.95 * len(ttfts)) - 1)],  # nearest rank
            "per_request_tok_s": statistics.median(decode) if decode else None,
            "aggregate_tok_s": sum(r["tokens"] for r in records) / wall}


def sweep(client: openai.OpenAI, server: str, adapters: list[str], args, stream: bool) -> list[dict]:
    """Every concurrency, with requests on one adapter and then spread over all of them."""
    rows = []
    for spread in (1, len(adapters)):
        for concurrency in args.concurrency:
            # one client alone sends 8 requests, so its TTFT median is not that of 2 samples
            per_client = args.requests_per_client if concurrency > 1 else max(8, args.requests_per_client)
            row = run_load(client, adapters[:spread], concurrency, per_client, args.max_tokens, stream)
            rows.append({"server": server, "adapters": spread, "concurrency": concurrency, **row})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def baseline_server(port: int, adapters: dict[str, str], base_folder: Path) -> threading.Thread:
    """The naive server: FastAPI + one generate() per request behind a lock (no batching, no streaming)."""
    import torch
    import uvicorn
    from fastapi import FastAPI
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selftune.hardware import autocast_dtype, set_threads

    set_threads()
    dtype = autocast_dtype(torch.device("cpu")) or torch.float32  # as the engine's serve_dtype=auto: fair on AVX2
    tokenizer = AutoTokenizer.from_pretrained(base_folder)
    model = AutoModelForCausalLM.from_pretrained(base_folder, dtype=dtype)
    names = {}
    for i, (model_id, folder) in enumerate(adapters.items()):
        names[model_id] = f"a{i}"
        if i == 0:
            model = PeftModel.from_pretrained(model, folder, adapter_name=names[model_id])
        else:
            model.load_adapter(folder, adapter_name=names[model_id])
    model = model.to(dtype).eval()
    lock = threading.Lock()
    app = FastAPI()

    @app.post("/v1/chat/completions")
    def complete(body: dict) -> dict:
        ids = tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        with lock, torch.inference_mode():
            model.set_adapter(names[body["model"]])
            out = model.generate(**ids, max_new_tokens=body["max_tokens"], do_sample=False)
        new = out[0, ids["input_ids"].shape[1]:]
        text = tokenizer.decode(new, skip_special_tokens=True)
        n = int(new.shape[0])
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": ids["input_ids"].shape[1], "completion_tokens": n,
                          "total_tokens": ids["input_ids"].shape[1] + n}}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    time.sleep(2)
    return thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    from selftune.hardware import describe
    from selftune.models import resolve_model

    print(describe(), flush=True)
    source_home = Path(os.environ.get("SELFTUNE_HOME", "~/.selftune")).expanduser()
    resolve_model(MODEL)  # converted once into the user's home; the bench home links to it
    results = {"date": date.today().isoformat(), "machine": describe(), "max_tokens": args.max_tokens, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / "models").symlink_to(source_home / "models")
        port = free_port()
        server = start_bench_server(home, port)
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0,
                                   timeout=600)
            adapters = train_adapters(client, 4, Path(tmp))
            run_load(client, adapters, 4, 1, 8, True)  # warm-up: loads the engine and the adapters
            results["runs"] += sweep(client, "selftune", adapters, args, stream=True)
            folders = {m: str(next(home.glob(f"jobs/ftjob-{m.rsplit(':', 1)[1]}/out"))) for m in adapters}
        finally:
            server.terminate()
            server.wait()
        if not args.skip_baseline:
            port = free_port()
            baseline_server(port, folders, resolve_model(MODEL))
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0,
                                   timeout=600)
            run_load(client, adapters[:1], 1, 1, 8, False)
            results["runs"] += sweep(client, "naive", adapters, args, stream=False)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
