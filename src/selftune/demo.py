"""``make demo``: the whole story on real data — check and measure Banking77, fine-tune SmolLM2 on it
through the API with the openai SDK, then show what fine-tuning bought against the 10-shot base.

The data comes from ``../shared/data/banking77`` when the project sits beside it, otherwise from
``$SELFTUNE_DEMO_DATA``, otherwise it is downloaded once from its public source (PolyAI's
task-specific-datasets, CC BY 4.0) into ``$SELFTUNE_HOME/datasets/banking77``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import openai
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from selftune.config import LOCAL_BASE_URL, get_settings
from selftune.errors import SelftuneError
from selftune.evals import EvalConfig, evaluate
from selftune.evals.local_server import local_server
from selftune.evals.report import print_summary, progress_bars
from selftune.jobs.lifecycle import TERMINAL, JobStatus
from selftune.store.atomic import atomic_write
from selftune.store.build_once import build_once

SOURCE = "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/master/banking_data"
SYSTEM_PROMPT = ("Classify the customer's banking message into exactly one intent label. "
                 "Answer with the label only.")
BASE_MODEL = "smollm2-135m-instruct"
FEW_SHOT = 10
TEST_SAMPLE = 200  # a fixed (seeded) sample of test.jsonl
PER_INTENT = 13  # train_1k.jsonl: 13 examples for each of the 77 intents
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_JOB = {"made_by": "make demo"}  # metadata of the demo's job: an interrupted run's leftover is found by it

console = Console(highlight=False, soft_wrap=True)


def banking77_dir() -> Path:
    """A folder with train_1k.jsonl and test.jsonl, found or built."""
    candidates = [os.environ.get("SELFTUNE_DEMO_DATA"), PROJECT_ROOT.parent / "shared" / "data" / "banking77"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train_1k.jsonl").is_file():
            return Path(candidate)
    return build_once(get_settings().home.expanduser() / "datasets" / "banking77", _download_banking77)


def _download_banking77(folder: Path) -> None:
    """Fetch the original CSVs and write the chat files the way ../shared/data does."""
    console.print(f"downloading Banking77 from {SOURCE} ...")
    splits = {}
    for name in ("train", "test"):
        try:
            with urllib.request.urlopen(f"{SOURCE}/{name}.csv", timeout=60) as response:
                text = response.read().decode("utf-8")
        except OSError as exc:
            raise SelftuneError(f"could not download Banking77 ({exc}); put train_1k.jsonl and test.jsonl "
                                "in a folder and point SELFTUNE_DEMO_DATA at it") from None
        (folder / f"{name}.csv").write_text(text)
        splits[name] = [(row["text"], row["category"]) for row in csv.DictReader(io.StringIO(text))]

    rng = random.Random(0)
    train = splits["train"][:]
    rng.shuffle(train)
    by_intent = defaultdict(list)
    for text, intent in train:
        by_intent[intent].append((text, intent))
    train_1k = [row for intent in sorted(by_intent) for row in by_intent[intent][:PER_INTENT]]
    rng.shuffle(train_1k)
    for name, rows in (("train.jsonl", train), ("train_1k.jsonl", train_1k), ("test.jsonl", splits["test"])):
        with atomic_write(folder / name) as f:
            for text, intent in rows:
                f.write(json.dumps({"messages": [{"role": "system", "content": SYSTEM_PROMPT},
                                                 {"role": "user", "content": text},
                                                 {"role": "assistant", "content": intent}]}) + "\n")


def _selftune(*args: str) -> None:
    """Run a selftune command as the user would type it, showing the command first."""
    console.print(f"\n[bold cyan]$ selftune {' '.join(args)}[/]")
    result = subprocess.run([sys.executable, "-m", "selftune.cli", *args])
    if result.returncode != 0:
        raise SystemExit(result.returncode)


def main() -> None:
    data = banking77_dir()
    train = Path(os.path.relpath(data / "train_1k.jsonl"))
    test = Path(os.path.relpath(data / "test.jsonl"))
    workdir = get_settings().home.expanduser() / "demo"
    console.print(f"[bold]selftune demo — stage 1: prepare data[/]  (Banking77 from {data})")
    _selftune("models", "list")
    _selftune("data", "check", str(train))
    _selftune("data", "stats", str(train))

    console.print("\n[bold]stage 2: train[/] through the Fine-tuning API, with the openai SDK")
    with local_server(workdir / "server.log") as url:
        console.print(f"selftune server: {url}")
        client = openai.OpenAI(base_url=url, api_key="local", max_retries=2, timeout=600)
        model = _fine_tune(client, train)

        console.print(f"\n[bold]stage 3: evaluate[/] {model} against the {FEW_SHOT}-shot base model on "
                      f"{TEST_SAMPLE} held-out messages of {test.name}")
        config = EvalConfig(data=test, models=[model, BASE_MODEL], few_shot=FEW_SHOT, few_shot_from=train,
                            limit=TEST_SAMPLE, seed=0, base_url=url, concurrency=8, out=workdir / "eval")
        with progress_bars(console) as progress:
            report = evaluate(config, progress)
        print_summary(report, console)
        console.print(f"\n[bold]report:[/] {(workdir / 'eval' / 'report.html').resolve()}")
        _show_in_dashboard(config, report, url)


def _show_in_dashboard(config: EvalConfig, report, url: str) -> None:
    """Record the evaluation as ``selftune eval`` does and point at the dashboard: the demo job and its
    evaluation are there. A server the demo started itself stays up until Enter (when someone is there
    to press it)."""
    from selftune.api.evaluations.service import dashboard_root, record_finished

    root = dashboard_root(url)
    try:
        evaluation = record_finished(config, report)
        console.print(f"[bold]evaluation:[/] {evaluation.id} · {root}evals/{evaluation.id}")
    except Exception as exc:  # noqa: BLE001 - the demo's results stand; say why the dashboard lacks them
        console.print(f"evaluation not recorded in the store: {exc}", markup=False)
    console.print(f"\n[bold]dashboard:[/] {root}")
    if url != LOCAL_BASE_URL:  # the demo's own server: it stops with the demo
        if sys.stdin.isatty():
            with contextlib.suppress(EOFError, KeyboardInterrupt):
                input("press Enter to stop the demo's server ")
        console.print(f"open it again later: [bold].venv/bin/selftune serve[/], then {dashboard_root(LOCAL_BASE_URL)}")


def _cancel_leftovers(client: openai.OpenAI) -> None:
    """Cancel the job of an earlier demo that was stopped before its end: its server put it back in the
    queue, and the worker would train it first while this run's own job waited."""
    for job in client.fine_tuning.jobs.list(limit=100, metadata=DEMO_JOB):
        if job.status not in TERMINAL:
            client.fine_tuning.jobs.cancel(job.id)
            console.print(f"  cancelled {job.id}, left unfinished by an earlier demo", markup=False)


def _fine_tune(client: openai.OpenAI, train: Path) -> str:
    """Upload, create the job, follow its events: the hosted workflow, unchanged but for base_url."""
    console.print(f"[cyan]client.files.create(file=open({str(train)!r}, 'rb'), purpose='fine-tune')[/]")
    with open(train, "rb") as f:
        uploaded = client.files.create(file=f, purpose="fine-tune")
    uploaded = client.files.wait_for_processing(uploaded.id)
    console.print(f"[cyan]client.fine_tuning.jobs.create(model={BASE_MODEL!r}, training_file={uploaded.id!r}, "
                  f"suffix='banking77', seed=0, metadata={DEMO_JOB!r})[/]")
    _cancel_leftovers(client)
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=uploaded.id, suffix="banking77", seed=0,
                                         metadata=DEMO_JOB)
    seen: set[str] = set()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[loss]}"), console=console) as progress:
        task = progress.add_task(f"{job.id} {job.status}", total=None, loss="")
        while job.status not in TERMINAL:
            time.sleep(2)
            job = client.fine_tuning.jobs.retrieve(job.id)
            for event in reversed(list(client.fine_tuning.jobs.list_events(job.id, limit=50))):
                if event.id in seen:
                    continue
                seen.add(event.id)
                data = event.data or {}
                if event.type == "metrics" and data.get("total_steps"):
                    progress.update(task, total=data["total_steps"], completed=data["step"],
                                    loss=f"loss {data.get('train_loss') or 0:.3f}")
                elif event.type != "metrics":
                    progress.console.print(f"  {event.message}", markup=False)
            progress.update(task, description=f"{job.id} {job.status}")
    if job.status != JobStatus.SUCCEEDED:
        raise SelftuneError(f"the fine-tuning job {job.status}: {job.error.message if job.error else ''}")
    console.print(f"fine-tuned model: [bold]{job.fine_tuned_model}[/]")
    return job.fine_tuned_model


if __name__ == "__main__":
    try:
        main()
    except SelftuneError as exc:
        console.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM while its server runs: the server was stopped in order
        console.print("interrupted")
        sys.exit(130)
