"""Load: many concurrent clients on two API keys against a real ``selftune serve``, for a bounded time.

Each client loops over a mix of what users do: upload a small fine-tune file, list and retrieve files,
list and retrieve models, chat completions (streamed and not, short answers, on the bundled
SmolLM2-135M-Instruct) and fine-tuning jobs, each cancelled at once (the worker runs, so training
starts and stops for real, without swamping the run). A 429 is counted apart and retried after its
``Retry-After``, as the openai SDK does (the clients here have ``max_retries=0`` to see every answer).

Checks (exit code 1 when one fails): no 5xx, no connection error, every object created is retrievable
by its own key and 404 for the other key. Prints p50/p99 per endpoint, counts, the server's peak RSS
and the CPU.

    .venv/bin/python bench/load.py [--seconds 60] [--clients 100] [--max-queued N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import openai
from servers import start_server

from selftune.evals.local_server import free_port

MODEL = "smollm2-135m-instruct"
KEYS = {"bench-a": "org-a", "bench-b": "org-b"}
QUESTIONS = ["My card still hasn't arrived, what should I do?", "How do I top up by bank transfer?",
             "Why was I charged a fee abroad?", "Someone used my card, can you help?"]
TRAINING = "\n".join(json.dumps({"messages": [{"role": "user", "content": q},
                                              {"role": "assistant", "content": "We are on it."}]})
                     for q in QUESTIONS * 3) + "\n"


def start_bench_server(home: Path, port: int, max_queued: int | None) -> subprocess.Popen:
    env = {**os.environ, "SELFTUNE_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "SELFTUNE_API_KEYS": ",".join(f"{k}:{o}" for k, o in KEYS.items())}
    if max_queued:
        env["SELFTUNE_SERVE_MAX_QUEUED"] = str(max_queued)
    return start_server(home, port, env, "bench-a")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Run:
    def __init__(self):
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.counts: dict[str, int] = defaultdict(int)  # "endpoint status"
        self.failures: list[str] = []
        self.created: list[tuple[str, str, str]] = []  # (kind, id, key)

    async def call(self, endpoint: str, make):
        """One request, retried after Retry-After on a 429 (counted apart); latency of each attempt."""
        while True:
            started = time.perf_counter()
            try:
                result = await make()
            except openai.RateLimitError as exc:
                self.counts[f"{endpoint} 429"] += 1
                await asyncio.sleep(float(exc.response.headers.get("retry-after", "1")))
                continue
            except openai.APIStatusError as exc:
                self.counts[f"{endpoint} {exc.status_code}"] += 1
                if exc.status_code >= 500:
                    self.failures.append(f"{endpoint}: {exc.status_code} {exc.message}")
                return None
            except openai.APIConnectionError as exc:
                self.counts[f"{endpoint} connection error"] += 1
                self.failures.append(f"{endpoint}: connection error {exc}")
                return None
            self.latency[endpoint].append(time.perf_counter() - started)
            self.counts[f"{endpoint} 200"] += 1
            return result


async def client_loop(run: Run, client: openai.AsyncOpenAI, key: str, deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    files: list[str] = []
    while time.monotonic() < deadline:
        action = rng.choices(["upload", "files", "models", "chat", "stream", "job"], [2, 3, 3, 4, 4, 1])[0]
        messages = [{"role": "user", "content": rng.choice(QUESTIONS)}]
        if action == "upload":
            f = await run.call("POST /files", lambda: client.files.create(
                file=("train.jsonl", TRAINING.encode()), purpose="fine-tune"))
            if f:
                files.append(f.id)
                run.created.append(("file", f.id, key))
        elif action == "files":
            await run.call("GET /files", lambda: client.files.list())
            if files:
                await run.call("GET /files/{id}", lambda: client.files.retrieve(rng.choice(files)))
        elif action == "models":
            await run.call("GET /models", lambda: client.models.list())
            await run.call("GET /models/{id}", lambda: client.models.retrieve(MODEL))
        elif action == "chat":
            await run.call("POST /chat/completions", lambda m=messages: client.chat.completions.create(
                model=MODEL, messages=m, max_tokens=16, temperature=0))
        elif action == "stream":
            async def streamed(m=messages):
                stream = await client.chat.completions.create(model=MODEL, messages=m, max_tokens=16,
                                                              temperature=0, stream=True)
                return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            await run.call("POST /chat/completions (stream)", streamed)
        elif action == "job" and files:
            job = await run.call("POST /fine_tuning/jobs", lambda: client.fine_tuning.jobs.create(
                model=MODEL, training_file=files[-1], hyperparameters={"n_epochs": 1}))
            if job:
                run.created.append(("job", job.id, key))
                await run.call("POST /fine_tuning/jobs/{id}/cancel", lambda j=job.id: client.fine_tuning.jobs.cancel(j))


async def check_isolation(run: Run, clients: dict[str, openai.AsyncOpenAI]) -> None:
    """Every object is there for its own key and 404 for the other one."""
    for kind, object_id, key in run.created:
        other = next(k for k in clients if k != key)
        get = {"file": lambda c, i: c.files.retrieve(i), "job": lambda c, i: c.fine_tuning.jobs.retrieve(i)}[kind]
        try:
            await get(clients[key], object_id)
        except openai.APIError as exc:
            run.failures.append(f"{kind} {object_id} lost for its own key: {exc}")
        try:
            await get(clients[other], object_id)
            run.failures.append(f"{kind} {object_id} seen by the other key")
        except openai.NotFoundError:
            pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]  # nearest rank


async def main_async(args, base_url: str, pid: int) -> Run:
    run = Run()
    clients = {key: openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=600) for key in KEYS}
    peak = [rss_mib(pid)]

    async def sample():
        while True:
            peak[0] = max(peak[0], rss_mib(pid))
            await asyncio.sleep(0.5)

    warm = time.perf_counter()  # a fresh home converts and loads the model first (~1 min): not part of the load
    await clients["bench-a"].chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                                     max_tokens=1)
    print(f"model converted and loaded by the first request in {time.perf_counter() - warm:.0f} s", flush=True)
    sampler = asyncio.create_task(sample())
    deadline = time.monotonic() + args.seconds
    keys = list(KEYS)
    await asyncio.gather(*(client_loop(run, clients[keys[c % 2]], keys[c % 2], deadline, c)
                           for c in range(args.clients)))
    sampler.cancel()
    await check_isolation(run, clients)
    run.peak_rss = peak[0]
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--max-queued", type=int, default=None,
                        help="SELFTUNE_SERVE_MAX_QUEUED (default: the server's)")
    args = parser.parse_args()
    from selftune.hardware import describe

    print("CPU:", describe(), flush=True)
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        server = start_bench_server(Path(home), port, args.max_queued)
        try:
            started = time.monotonic()
            run = asyncio.run(main_async(args, f"http://127.0.0.1:{port}/v1", server.pid))
            wall = time.monotonic() - started
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(f"{args.clients} clients on 2 keys, {args.seconds:.0f} s of load ({wall:.0f} s with the checks); "
          f"model {MODEL}, chat max_tokens 16")
    print(f"{'endpoint':<36} {'n':>6} {'p50 ms':>9} {'p99 ms':>9}")
    for endpoint, values in sorted(run.latency.items()):
        print(f"{endpoint:<36} {len(values):>6} {1000 * percentile(values, 0.5):>9.0f} "
              f"{1000 * percentile(values, 0.99):>9.0f}")
    print("answers:", json.dumps(dict(sorted(run.counts.items()))))
    print(f"objects created and checked on both keys: {len(run.created)}; server peak RSS {run.peak_rss:.0f} MiB")
    for failure in run.failures[:20]:
        print("FAIL", failure)
    print("checks:", "passed" if not run.failures else f"{len(run.failures)} failures")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
