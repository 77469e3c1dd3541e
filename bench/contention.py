"""Sharing the CPU: a training job, chat clients and a second training at once (issue 18, "Contention").

Starts ``selftune serve`` on SmolLM2-135M and measures, each phase bounded by --phase-timeout:

  a. training alone: an API job, then a `selftune train` run (tokens/s of the training loop, and
     tokens per wall second from start to finish, setup included)
  b. 8 chat clients alone (latency p50/p95 of whole non-streamed answers, completion tokens/s)
  c. both at once: the 8 clients chat for as long as an API job trains
  d. a `selftune train` run next to an API job, started together: their total tokens per wall second
     against one run alone

and checks the issue's conditions: in (c) job throughput and chat latency within 2x of each alone; in
(d) total work per second not below one run alone. ``--policy off`` runs every process the old way
(each takes every core, OpenMP threads spin while they wait: SELFTUNE_THREAD_POLICY=off) to show the
collapse the thread policy removes. Run it on an otherwise idle machine: other work on the cores makes
every figure noisy.

    .venv/bin/python bench/contention.py [--data ../shared/data/banking77/train_1k.jsonl] [--policy share|off]
        [--examples 192] [--clients 8] [--max-tokens 32] [--phase-timeout 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import openai
from servers import start_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
MODEL = "smollm2-135m-instruct"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "banking77" / "train_1k.jsonl"
BATCH = 8
QUESTIONS = ["My card still hasn't arrived after two weeks, what should I do?",
             "How can I top up my account using a bank transfer from another bank?",
             "Why was I charged a fee when I withdrew cash abroad last weekend?",
             "I think someone used my card without permission, can you help me?"]


def environment(home: Path, policy: str) -> dict[str, str]:
    env = {**os.environ, "SELFTUNE_HOME": str(home), "HF_HUB_OFFLINE": "1", "SELFTUNE_THREAD_POLICY": policy,
           "PYTHONPATH": str(ROOT / "src")}
    if policy == "off":
        env.pop("OMP_WAIT_POLICY", None)
    return env




# ---- training -------------------------------------------------------------------------------------------
class JobRun:
    """One API fine-tuning job, from creation to its end (or --phase-timeout: then cancelled)."""

    def __init__(self, client: openai.OpenAI, home: Path, file_id: str, timeout: float):
        self.client, self.home, self.timeout = client, home, timeout
        self.started = time.perf_counter()
        self.job = client.fine_tuning.jobs.create(model=MODEL, training_file=file_id, seed=0,
                                                  hyperparameters={"n_epochs": 1, "batch_size": BATCH})
        self.result: dict | None = None

    def running(self) -> bool:
        return self.client.fine_tuning.jobs.retrieve(self.job.id).status == "running"

    def wait(self) -> dict:
        while (job := self.client.fine_tuning.jobs.retrieve(self.job.id)).status not in (
                "succeeded", "failed", "cancelled"):
            if time.perf_counter() - self.started > self.timeout:
                self.client.fine_tuning.jobs.cancel(self.job.id)
                self.result = {"timed_out": True, "wall_s": round(time.perf_counter() - self.started, 1)}
                return self.result
            time.sleep(0.5)
        wall = time.perf_counter() - self.started
        if job.status != "succeeded":
            raise RuntimeError(f"job {job.id} {job.status}: {job.error}")
        record = json.loads((self.home / "jobs" / job.id / "out" / "training.json").read_text())
        self.result = {"tokens": record["trained_tokens"], "loop_tokens_s": record["tokens_per_second"],
                       "wall_s": round(wall, 1), "wall_tokens_s": round(record["trained_tokens"] / wall, 1),
                       "threads_at_start": record["machine"]["threads"]}
        return self.result


class TrainRun:
    """One `selftune train` process on the same data (its own output folder)."""

    def __init__(self, data: Path, out: Path, env: dict[str, str], timeout: float):
        self.out, self.timeout = out, timeout
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "selftune.cli", "train", "--train", str(data), "--model", MODEL, "--epochs", "1",
             "--batch-size", str(BATCH), "--seed", "0", "--out", str(out), "--no-progress"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait(self) -> dict:
        try:
            output, _ = self.process.communicate(timeout=max(1.0, self.timeout - (time.perf_counter() - self.started)))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return {"timed_out": True, "wall_s": round(time.perf_counter() - self.started, 1)}
        wall = time.perf_counter() - self.started
        if self.process.returncode != 0:
            raise RuntimeError(f"selftune train failed:\n{output[-2000:]}")
        record = json.loads((self.out / "training.json").read_text())
        return {"tokens": record["trained_tokens"], "loop_tokens_s": record["tokens_per_second"],
                "wall_s": round(wall, 1), "wall_tokens_s": round(record["trained_tokens"] / wall, 1),
                "threads_at_start": record["machine"]["threads"]}


# ---- chat -------------------------------------------------------------------------------------------------
def chat(client: openai.OpenAI, clients: int, max_tokens: int, until, timeout: float) -> dict:
    """``clients`` threads, each asking one question after another until ``until()`` says stop."""
    latencies: list[float] = []
    tokens, errors = [0], [0]
    lock = threading.Lock()
    started = time.perf_counter()

    def one_client(k: int) -> None:
        i = 0
        while not until() and time.perf_counter() - started < timeout:
            asked = time.perf_counter()
            try:
                answer = client.chat.completions.create(
                    model=MODEL, max_tokens=max_tokens, temperature=0, seed=k,
                    messages=[{"role": "user", "content": QUESTIONS[(k + i) % len(QUESTIONS)]}])
            except openai.APIError:
                with lock:
                    errors[0] += 1
                continue
            took = time.perf_counter() - asked
            with lock:
                latencies.append(took)
                tokens[0] += answer.usage.completion_tokens
            i += 1

    threads = [threading.Thread(target=one_client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies) or [float("nan")]
    return {"requests": len(latencies), "errors": errors[0], "p50_s": round(statistics.median(ordered), 2),
            "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            "tokens_s": round(tokens[0] / wall, 1), "wall_s": round(wall, 1)}


def requests_done(count: int, clients_seen: list[int]):
    """An ``until`` for a fixed number of requests in all (counted as they start)."""
    def until() -> bool:
        clients_seen[0] += 1
        return clients_seen[0] > count
    return until


# ---- the run ----------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a chat-format training file (Banking77)")
    parser.add_argument("--examples", type=int, default=192, help="first N examples trained on (N/8 steps)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=32, help="chat requests in phase (b), all clients together")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--policy", choices=("share", "off"), default="share",
                        help="off: the old behaviour (every process every core, spinning OpenMP threads)")
    parser.add_argument("--phase-timeout", type=float, default=300.0, help="seconds a phase may take")
    parser.add_argument("--phases", default="abcd")
    args = parser.parse_args()
    from selftune.evals.local_server import free_port
    from selftune.hardware import describe

    if not args.data.is_file():
        sys.exit(f"--data: {args.data} not found (the Banking77 files are in ../shared/data/banking77/)")
    print(describe())
    print(f"policy {args.policy}, {args.examples} examples in steps of {BATCH} ({args.examples // BATCH} steps), "
          f"{args.clients} chat clients, {args.max_tokens} tokens per answer, load before: "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        data = work / "train.jsonl"
        data.write_text("".join(args.data.read_text().splitlines(keepends=True)[:args.examples]))
        env = environment(home, args.policy)
        warm = subprocess.run([sys.executable, "-c", f"from selftune.models.resolve import resolve_model; "
                               f"resolve_model({MODEL!r})"], env=env, capture_output=True, text=True)
        if warm.returncode:  # the model is converted once here, not inside a measured phase
            sys.exit(f"could not prepare {MODEL}:\n{warm.stderr[-2000:]}")
        port = free_port()
        server = start_server(home, port, env, "bench", wait_s=120)
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0,
                                   timeout=args.phase_timeout)
            file_id = client.files.wait_for_processing(
                client.files.create(file=open(data, "rb"), purpose="fine-tune").id).id  # noqa: SIM115
            results = run_phases(args, client, home, work, data, file_id, env)
        finally:
            server.terminate()
            server.wait(timeout=120)
    report(results, args)


def run_phases(args, client, home, work, data, file_id, env) -> dict:
    results: dict = {}
    timeout = args.phase_timeout
    if "a" in args.phases:
        results["job alone"] = JobRun(client, home, file_id, timeout).wait()
        results["train alone"] = TrainRun(data, work / "alone", env, timeout).wait()
        print("a", results["job alone"], results["train alone"], flush=True)
    if "b" in args.phases or "c" in args.phases:
        client.chat.completions.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    if "b" in args.phases:
        time.sleep(3)  # the engine goes idle, as it would between users
        results["chat alone"] = chat(client, args.clients, args.max_tokens, requests_done(args.requests, [0]), timeout)
        print("b", results["chat alone"], flush=True)
    if "c" in args.phases:
        job = JobRun(client, home, file_id, timeout)
        while not job.running() and time.perf_counter() - job.started < timeout:
            time.sleep(0.2)
        waiter = threading.Thread(target=job.wait)
        waiter.start()
        results["chat while training"] = chat(client, args.clients, args.max_tokens,
                                              lambda: job.result is not None, timeout)
        waiter.join()
        results["job while chatting"] = job.result
        print("c", results["chat while training"], results["job while chatting"], flush=True)
    if "d" in args.phases:
        time.sleep(3)
        started = time.perf_counter()
        job = JobRun(client, home, file_id, timeout)
        train = TrainRun(data, work / "beside", env, timeout)
        waiter = threading.Thread(target=job.wait)  # each run's end is seen as it happens
        waiter.start()
        train_result = train.wait()
        waiter.join()
        job_result = job.result
        wall = time.perf_counter() - started
        results["job beside train"], results["train beside job"] = job_result, train_result
        if not (job_result.get("timed_out") or train_result.get("timed_out")):
            results["together"] = {"wall_s": round(wall, 1),
                                   "wall_tokens_s": round((job_result["tokens"] + train_result["tokens"]) / wall, 1)}
        else:
            results["together"] = {"timed_out": True, "wall_s": round(wall, 1)}
        print("d", results["job beside train"], results["train beside job"], results["together"], flush=True)
    return results


def report(results: dict, args) -> None:
    print()
    print(f"{'phase':<22} {'tokens/s (loop)':>16} {'tokens/s (wall)':>16} {'wall s':>8} {'p50 s':>7} {'p95 s':>7}"
          f" {'chat tok/s':>10} {'requests':>9}")
    for name, r in results.items():
        if r.get("timed_out"):
            print(f"{name:<22} {'timed out after ' + str(r['wall_s']) + ' s':>34}")
            continue
        print(f"{name:<22} {r.get('loop_tokens_s', ''):>16} {r.get('wall_tokens_s', ''):>16} {r['wall_s']:>8} "
              f"{r.get('p50_s', ''):>7} {r.get('p95_s', ''):>7} {r.get('tokens_s', ''):>10} {r.get('requests', ''):>9}")
    print()
    for line in checks(results):
        print(line)


def checks(results: dict) -> list[str]:
    lines = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    alone, busy = results.get("job alone"), results.get("job while chatting")
    chat_alone, chat_busy = results.get("chat alone"), results.get("chat while training")
    if alone and busy and chat_alone and chat_busy:
        if busy.get("timed_out") or alone.get("timed_out"):
            lines.append("FAIL  (c) a job timed out")
        else:
            ratio = alone["loop_tokens_s"] / busy["loop_tokens_s"]
            lines.append(f"{verdict(ratio <= 2)}  (c) job throughput while 8 clients chat: {busy['loop_tokens_s']} "
                         f"tokens/s against {alone['loop_tokens_s']} alone, {ratio:.2f}x slower (at most 2x)")
        for q in ("p50_s", "p95_s"):
            ratio = chat_busy[q] / chat_alone[q]
            lines.append(f"{verdict(ratio <= 2)}  (c) chat latency {q[:3]} while a job trains: {ratio:.2f}x alone "
                         "(at most 2x)")
    together, one = results.get("together"), [results.get("job alone"), results.get("train alone")]
    if together and all(one):
        if together.get("timed_out") or any(r.get("timed_out") for r in one):
            lines.append("FAIL  (d) a run timed out")
        else:
            single = statistics.mean(r["wall_tokens_s"] for r in one)
            ratio = together["wall_tokens_s"] / single
            lines.append(f"{verdict(ratio >= 1)}  (d) a `selftune train` beside a job: together {ratio:.2f}x the "
                         f"work per second of one run alone ({together['wall_tokens_s']} vs {single:.1f} tokens/s, "
                         "wall clock, setup included; at least 1x)")
    return lines


if __name__ == "__main__":
    main()
