"""The migration story on Banking77, end to end on one machine (docs/migrate.md, figures in
docs/benchmarks.md). A second selftune server plays the hosted service: its own home, key and
organisation, and SmolLM2 offered under a hosted name (``gpt-4.1-nano-2025-04-14``).

1. "hosted": a fine-tuned model is trained there on ``train_1k.jsonl`` (3 epochs, as ``make demo``);
2. it answers 2,000 training prompts with ``store: true`` (its production traffic);
3. ``migrate inventory`` takes stock; ``migrate capture --from-stored`` builds a training file from
   that traffic alone (no human label); ``migrate replay`` trains the local model on it with the
   hosted job's own hyperparameters;
4. ``migrate compare`` on 500 held-out test messages: agreement with the old model, both models'
   accuracy against the true labels, tokens, latency and cost.

Run it with the machine otherwise idle (about 30 minutes on a 2-core CPU):

    .venv/bin/python bench/migrate_demo.py [--traffic 2000] [--test-sample 500]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai
from rich.console import Console

from selftune.config import get_settings
from selftune.demo import BASE_MODEL, banking77_dir
from selftune.evals.local_server import free_port
from selftune.evals.report import print_summary
from selftune.hardware import describe
from selftune.migrate.capture import capture
from selftune.migrate.compare import compare
from selftune.migrate.config import CaptureConfig, CompareConfig
from selftune.migrate.inventory import inventory
from selftune.migrate.plan import save_plan
from selftune.migrate.replay import ReplayOptions, replay

HOSTED_NAME = "gpt-4.1-nano-2025-04-14"
HOSTED_KEY = "hosted-key"
console = Console(highlight=False)


@contextlib.contextmanager
def server(home: Path, **env: str):
    """A ``selftune serve`` in ``home`` on a free port; its base URL while inside."""
    home.mkdir(parents=True, exist_ok=True)
    shared_models = get_settings().models_dir  # convert SmolLM2 once for both servers
    shared_models.mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(shared_models)
    port = free_port()
    with open(home / "server.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "selftune.cli", "serve", "--port", str(port), "--home",
                                    str(home)], env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"server in {home} did not start: see {home / 'server.log'}")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=60)


def wait(client: openai.OpenAI, job_id: str) -> openai.types.fine_tuning.FineTuningJob:
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in ("succeeded", "failed", "cancelled"):
        time.sleep(5)
    if job.status != "succeeded":
        sys.exit(f"job {job_id} {job.status}: {job.error}")
    return job


def production_traffic(client: openai.OpenAI, model: str, data: Path, count: int, concurrency: int = 8) -> None:
    """The hosted model answers ``count`` training messages (not its own training examples) with store: true."""
    from concurrent.futures import ThreadPoolExecutor

    known = {json.loads(line)["messages"][1]["content"] for line in (data / "train_1k.jsonl").read_text().splitlines()}
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    prompts = [r["messages"][:2] for r in rows if r["messages"][1]["content"] not in known][:count]

    def one(messages):
        client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0, store=True,
                                       metadata={"source": "production"})

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, prompts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traffic", type=int, default=2000)
    parser.add_argument("--test-sample", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    data = banking77_dir()
    work = get_settings().home.expanduser() / "demo" / "migrate"
    if work.exists():
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True)
    cpu = describe()
    console.print(cpu, markup=False)
    timings: dict[str, float] = {}
    aliases = f"{HOSTED_NAME}={BASE_MODEL}"

    def timed(name: str):
        started = time.monotonic()
        return lambda: timings.__setitem__(name, round(time.monotonic() - started, 1))

    hosted_env = {"SELFTUNE_API_KEYS": f"{HOSTED_KEY}:acme", "SELFTUNE_MODEL_ALIASES": aliases}
    with server(work / "hosted", **hosted_env) as hosted_url, \
            server(work / "local", SELFTUNE_MODEL_ALIASES=aliases, SELFTUNE_API_KEYS="") as local_url:
        hosted = openai.OpenAI(base_url=hosted_url, api_key=HOSTED_KEY, timeout=600)
        console.print(f'1. "hosted": fine-tune {HOSTED_NAME} on train_1k.jsonl ({args.epochs} epochs)')
        done = timed("hosted_training_s")
        with open(data / "train_1k.jsonl", "rb") as f:
            uploaded = hosted.files.wait_for_processing(hosted.files.create(file=f, purpose="fine-tune").id)
        job = hosted.fine_tuning.jobs.create(model=HOSTED_NAME, training_file=uploaded.id, suffix="banking77", seed=0,
                                             hyperparameters={"n_epochs": args.epochs})
        job = wait(hosted, job.id)
        done()
        console.print(f"   {job.fine_tuned_model}\n2. its production traffic: {args.traffic} messages, store: true")
        done = timed("production_traffic_s")
        production_traffic(hosted, job.fine_tuned_model, data, args.traffic)
        done()
        hosted.files.delete(uploaded.id)  # the training data is gone from the service (as when it closes)

        console.print("3. migrate inventory, capture --from-stored, replay")
        plan_path = work / "plan.json"
        done = timed("inventory_s")
        plan = inventory(hosted, base_url=hosted_url)
        save_plan(plan, plan_path)
        done()
        done = timed("capture_s")
        summary = capture(CaptureConfig(model=job.fine_tuned_model, out=work / "captured.jsonl", base_url=hosted_url,
                                        api_key=HOSTED_KEY, from_stored=True, metadata={"source": "production"},
                                        plan=plan_path))
        done()
        console.print(f"   captured {summary.kept} examples (dropped {summary.dropped})")
        from selftune.migrate.plan import load_plan

        plan = load_plan(plan_path)
        local = openai.OpenAI(base_url=local_url, api_key="local", timeout=600)
        done = timed("replay_training_s")
        (replayed,) = replay(plan, local, None, ReplayOptions(plan_path=plan_path, poll_seconds=5),
                             say=lambda line: console.print(f"   {line}", markup=False))
        done()
        new_model = replayed.replayed.fine_tuned_model
        console.print(f"   {new_model}\n4. migrate compare on {args.test_sample} test messages")
        done = timed("compare_s")
        report = compare(CompareConfig(old=f"{job.fine_tuned_model}@{hosted_url}", old_api_key=HOSTED_KEY,
                                       new=new_model, base_url=local_url, api_key="local", data=data / "test.jsonl",
                                       limit=args.test_sample, out=work / "compare"))
        done()
    print_summary(report, console)
    old, new = report.models
    grader = report.grader
    ratio = new.quality[grader].mean / old.quality[grader].mean if old.quality[grader].mean else float("nan")
    console.print(f"new/old accuracy: {ratio:.1%} (target ≥ 95%)")
    print(json.dumps({"cpu": cpu, "timings_s": timings, "captured": summary.model_dump(),
                      "agreement": report.agreements[0].model_dump(),
                      "models": [{"model": r.model, "accuracy": r.quality[grader].mean, "ci95": r.quality[grader].ci95,
                                  "prompt_tokens": r.prompt_tokens, "latency_p50": r.latency_s.p50,
                                  "cost_per_1000": r.own_cost, "cost_basis": r.cost_basis} for r in report.models],
                      "new_over_old_accuracy": ratio, "report": str(work / "compare" / "report.html")},
                     indent=1, default=str))


if __name__ == "__main__":
    main()
