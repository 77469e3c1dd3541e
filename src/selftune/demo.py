"""``make demo``: two stories on real data, each through the whole workflow — check and measure the
data, fine-tune SmolLM2 on it through the API with the openai SDK, then show what fine-tuning bought
against the base model prompted with 10 examples — ending with one summary of both.

- **labels** (``banking77``): a customer message in, one of 77 intents out.
- **extraction** (``restaurants``): a restaurant description in, its attributes out as one JSON object;
  each model is also run under the answer's JSON schema (constrained decoding), the other tool teams
  reach for first.

``python -m selftune.demo --task banking77`` (or ``selftune demo --task ...``) runs one. The data comes
from :mod:`selftune.demo_data` (``../shared/data``, ``$SELFTUNE_DEMO_DATA`` or the public source).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import openai
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from selftune.config import LOCAL_BASE_URL, get_settings
from selftune.demo_data import BANKING77_SYSTEM, task_dir
from selftune.errors import SelftuneError
from selftune.evals import EvalConfig, EvalReport, evaluate
from selftune.evals.local_server import local_server
from selftune.evals.report import print_summary, progress_bars, structured
from selftune.jobs.lifecycle import TERMINAL, JobStatus

SYSTEM_PROMPT = BANKING77_SYSTEM  # the Banking77 task's (bench/distill_demo.py builds its prompts with it)
BASE_MODEL = "smollm2-135m-instruct"
FEW_SHOT = 10
DEMO_JOB = {"made_by": "make demo"}  # metadata of the demo's jobs: an interrupted run's leftover is found by it

console = Console(highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Story:
    """One task of the demo: what is trained on, with which job settings, and how it is evaluated."""

    task: str
    title: str
    train_file: str  # in the task's folder
    test_sample: int  # a fixed (seeded) sample of test.jsonl
    hyperparameters: dict = field(default_factory=dict)  # the job's; "auto" where not given
    schema: bool = False  # also run every model under the task's schema.json


STORIES = {
    # 1,001 messages (13 per intent), the job's defaults (3 epochs): ~6 of the demo's ~8 minutes
    "banking77": Story("banking77", "labels: 77 banking intents", "train_1k.jsonl", test_sample=200),
    # the whole training file (4,299 descriptions) under selftune's time_budget extension: the job plans its
    # schedule (learning-rate decay included) to end within 4 minutes on whatever CPU runs the demo, so an
    # AVX2-only machine sees fewer examples rather than a longer demo. Batch 4: more, smaller steps.
    "restaurants": Story("restaurants", "extraction: restaurant descriptions to JSON", "train.jsonl",
                         test_sample=100, hyperparameters={"batch_size": 4, "time_budget": 240}, schema=True),
}


def banking77_dir() -> Path:
    """The Banking77 folder (bench/distill_demo.py and bench/migrate_demo.py use the demo's data)."""
    return task_dir("banking77")


def _selftune(*args: str) -> None:
    """Run a selftune command as the user would type it, showing the command first."""
    console.print(f"\n[bold cyan]$ selftune {' '.join(args)}[/]")
    result = subprocess.run([sys.executable, "-m", "selftune.cli", *args])
    if result.returncode != 0:
        raise SystemExit(result.returncode)


@dataclass
class Told:
    """A story's outcome: its evaluation and where its report is."""

    story: Story
    config: EvalConfig
    report: EvalReport

    @property
    def html(self) -> Path:
        return (Path(self.config.out) / "report.html").resolve()


def main(tasks: list[str]) -> None:
    workdir = get_settings().home.expanduser() / "demo"
    stories = [STORIES[task] for task in tasks]
    folders = {story.task: task_dir(story.task) for story in stories}  # downloads, if any, before the server
    _selftune("models", "list")
    with local_server(workdir / "server.log") as url:
        console.print(f"selftune server: {url}")
        client = openai.OpenAI(base_url=url, api_key="local", max_retries=2, timeout=600)
        told = [_tell(story, folders[story.task], client, url, workdir) for story in stories]
        print_both(told, console)
        _show_in_dashboard(told, url)


def _tell(story: Story, data: Path, client: openai.OpenAI, url: str, workdir: Path) -> Told:
    """One story: prepare, train through the API, evaluate against the 10-shot base."""
    started = time.monotonic()
    train = _training_file(story, data)
    test = Path(os.path.relpath(data / "test.jsonl"))
    console.rule(f"[bold]{story.title}[/]")
    console.print(f"[bold]stage 1: prepare data[/]  ({story.task} from {data})")
    _selftune("data", "check", str(train))
    _selftune("data", "stats", str(train))

    console.print("\n[bold]stage 2: train[/] through the Fine-tuning API, with the openai SDK")
    model = _fine_tune(client, train, story)

    shown = " (each also under the JSON schema)" if story.schema else ""
    console.print(f"\n[bold]stage 3: evaluate[/] {model} against the {FEW_SHOT}-shot base model{shown} on "
                  f"{story.test_sample} held-out examples of {test.name}")
    config = EvalConfig(data=test, models=[model, BASE_MODEL], few_shot=FEW_SHOT, few_shot_from=train,
                        limit=story.test_sample, seed=0, base_url=url, concurrency=8,
                        schema_file=data / "schema.json" if story.schema else None,
                        out=workdir / ("eval" if story.task == "banking77" else f"eval-{story.task}"))
    with progress_bars(console) as progress:
        report = evaluate(config, progress)
    print_summary(report, console)
    told = Told(story, config, report)
    console.print(f"\n[bold]report:[/] {told.html}  ({story.task} took {(time.monotonic() - started) / 60:.1f} min)")
    return told


def _training_file(story: Story, data: Path) -> Path:
    """The file to upload, as the user would name it (relative to where the demo runs)."""
    return Path(os.path.relpath(data / story.train_file))


def print_both(told: list[Told], console: Console) -> None:
    """The demo's last word: every model of every story in one table, and where the reports are."""
    table = Table(title="selftune demo — what fine-tuning bought")
    for column in ("task", "model", "kind", "quality (95% CI)", "valid JSON", "field F1", "prompt tok",
                   "latency p50"):
        table.add_column(column, justify="left" if column in ("task", "model", "kind") else "right")
    for t in told:
        report = t.report
        fields = {r.name: x for r, x in structured(report)}
        for r in report.models:
            q, x = r.quality[report.grader], fields.get(r.name)
            quality = "exact object" if x else report.grader
            table.add_row(t.story.task, r.name if len(r.name) <= 40 else f"…{r.name[-39:]}", r.kind,
                          f"{q.mean:.1%} ({q.ci95[0]:.1%}–{q.ci95[1]:.1%}) {quality}",
                          f"{x['valid_json']['value']:.0%}" if x else "–",
                          f"{x['fields']['f1']['value']:.2f}" if x else "–",
                          f"{r.prompt_tokens:,.0f}", f"{r.latency_s.p50:.2f} s")
        table.add_section()
    console.print()
    console.print(table)
    for t in told:
        console.print(f"[bold]{t.story.task} report:[/] {t.html}")


def _show_in_dashboard(told: list[Told], url: str) -> None:
    """Record the evaluations as ``selftune eval`` does and point at the dashboard: the demo's jobs and
    their evaluations are there. A server the demo started itself stays up until Enter (when someone is
    there to press it)."""
    from selftune.api.evaluations.service import dashboard_root, record_finished

    root = dashboard_root(url)
    for t in told:
        try:
            evaluation = record_finished(t.config, t.report)
            console.print(f"[bold]{t.story.task} evaluation:[/] {evaluation.id} · {root}evals/{evaluation.id}")
        except Exception as exc:  # noqa: BLE001 - the demo's results stand; say why the dashboard lacks them
            console.print(f"{t.story.task} evaluation not recorded in the store: {exc}", markup=False)
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


def _fine_tune(client: openai.OpenAI, train: Path, story: Story) -> str:
    """Upload, create the job, follow its events: the hosted workflow, unchanged but for base_url."""
    console.print(f"[cyan]client.files.create(file=open({str(train)!r}, 'rb'), purpose='fine-tune')[/]")
    with open(train, "rb") as f:
        uploaded = client.files.create(file=f, purpose="fine-tune")
    uploaded = client.files.wait_for_processing(uploaded.id)
    settings = {"method": {"type": "supervised", "supervised": {"hyperparameters": story.hyperparameters}}} \
        if story.hyperparameters else {}
    shown = "".join(f", {k}={v!r}" for k, v in settings.items())
    console.print(f"[cyan]client.fine_tuning.jobs.create(model={BASE_MODEL!r}, training_file={uploaded.id!r}, "
                  f"suffix={story.task!r}, seed=0{shown}, metadata={DEMO_JOB!r})[/]")
    _cancel_leftovers(client)
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=uploaded.id, suffix=story.task, seed=0,
                                         metadata=DEMO_JOB, **settings)
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


def parse_tasks(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(prog="python -m selftune.demo", description="The end-to-end demo: labels "
                                     "(Banking77) and extraction to JSON (restaurants).")
    parser.add_argument("--task", choices=sorted(STORIES), action="append",
                        help="run this story only (repeatable); default: both, labels first")
    return parser.parse_args(argv).task or list(STORIES)


if __name__ == "__main__":
    try:
        main(parse_tasks())
    except SelftuneError as exc:
        console.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM while its server runs: the server was stopped in order
        console.print("interrupted")
        sys.exit(130)
