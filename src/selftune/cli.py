"""``selftune``: the command line. Each command parses, calls one library function, prints the answer."""

from __future__ import annotations

import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Column, Table

from selftune.data.problems import count_of
from selftune.errors import SelftuneError
from selftune.models.registry import DEFAULT_MODEL

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Self-hosted, OpenAI-compatible fine-tuning of open language models.")
data_app = typer.Typer(no_args_is_help=True, help="Stage 1: check, measure, convert and split training files.")
models_app = typer.Typer(no_args_is_help=True, help="Base models: what is available offline.")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")

EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE: distinct from 1 (invalid data) and 2 (usage), so scripts can tell a bug

# soft_wrap: a problem line stays one line (greppable, clickable) whatever the terminal width.
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


class PurposeOption(str, Enum):
    sft = "sft"
    dpo = "dpo"


class SourceFormat(str, Enum):
    csv = "csv"
    prompt_completion = "prompt-completion"


ModelOption = Annotated[str, typer.Option("--model", "-m", help="Base model whose tokenizer and chat template to use.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")]


@data_app.command("check")
def data_check(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="JSONL training file.")],
    purpose: Annotated[Optional[PurposeOption], typer.Option(help="sft (chat) or dpo (preference); detected when absent.")] = None,
    model: ModelOption = DEFAULT_MODEL,
    length_check: Annotated[bool, typer.Option(help="Warn about examples longer than the model's context.")] = True,
    max_problems: Annotated[int, typer.Option(min=1, help="List at most this many errors (and warnings).")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Validate a file as strictly as the hosted service. Exit 0 valid, 1 invalid, 2 unusable."""
    from selftune.data import check

    report = check(file, purpose=purpose.value if purpose else None,
                   model=model if length_check else None, max_problems=max_problems)
    if as_json:
        out.print(report.to_json(), markup=False)
    else:
        _print_report(report, file)
    raise typer.Exit(0 if report.valid else 1)


def _print_report(report, file: Path) -> None:
    name = str(file)
    kind = {"sft": "chat (sft)", "dpo": "preference (dpo)", None: "unknown format"}[report.purpose]
    for problem in report.errors:
        out.print(problem.format(name), markup=False)
    if report.errors_not_shown:
        out.print(f"{name}: ... and {report.errors_not_shown:,} more errors not shown", markup=False)
    for problem in report.warnings:
        out.print(problem.format(name).replace(": ", ": warning: ", 1), markup=False)
    if report.warnings_not_shown:
        out.print(f"{name}: ... and {report.warnings_not_shown:,} more warnings not shown", markup=False)
    warnings = f", {count_of(report.warning_count, 'warning')}" if report.warning_count else ""
    examples = count_of(report.examples, "example")
    if report.valid:
        out.print(f"[green]✓[/] {name}: valid, {examples}, {kind}{warnings}")
        return
    where = f" on {report.lines_with_errors:,} of {examples}" if report.lines_with_errors else f", {examples}"
    out.print(f"[red]✗[/] {name}: invalid, {count_of(report.error_count, 'error')}{where}, {kind}{warnings}")


@data_app.command("stats")
def data_stats(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="JSONL training file (valid: run `selftune data check` first).")],
    model: ModelOption = DEFAULT_MODEL,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Epochs to estimate for (default: the hosted auto rule).")] = None,
    estimate_time: Annotated[bool, typer.Option(help="Measure this machine's training speed (cached) to estimate time.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Token statistics with the model's tokenizer and chat template, and cost and time estimates."""
    from selftune.data.stats import stats

    if not as_json and estimate_time:
        err.print("[dim]measuring with the model's tokenizer; the first run also times a few training steps...[/]")
    result = stats(file, model, epochs=epochs, measure_speed=estimate_time)
    if as_json:
        out.print(result.model_dump_json(indent=2), markup=False)
        return
    table = Table(title=f"{file} — {result.model}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    dist = result.tokens_per_example
    rows = [
        ("examples", f"{result.examples:,}"),
        ("tokens per example", f"min {dist.min:,} · mean {dist.mean:,.1f} · p50 {dist.p50:,.0f} · "
                               f"p95 {dist.p95:,.0f} · max {dist.max:,}" if dist else "-"),
        ("total tokens", f"{result.total_tokens:,}"),
        ("trained tokens", f"{result.trained_tokens:,} ({_percent(result.trained_tokens, result.total_tokens)})"),
        (f"over the context ({result.context_length:,})", f"{result.over_context:,}"),
        ("epochs (auto rule)" if epochs is None else "epochs", f"{result.estimate.n_epochs}"),
        ("billed tokens", f"{result.estimate.billed_tokens:,}"),
    ]
    if result.estimate.seconds is not None:
        rows.append(("training time, this machine",
                     f"~{_duration(result.estimate.seconds)} at {result.estimate.tokens_per_second:,.0f} tokens/s"))
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@data_app.command("convert")
def data_convert(
    source: Annotated[Path, typer.Argument(metavar="SOURCE", help="CSV/TSV or prompt/completion JSONL file.")],
    dest: Annotated[Path, typer.Argument(metavar="DEST", help="Chat JSONL file to write.")],
    source_format: Annotated[Optional[SourceFormat], typer.Option("--from", help="Input format; from the file extension when absent.")] = None,
    user_column: Annotated[str, typer.Option(help="CSV column holding the user message.")] = "text",
    assistant_column: Annotated[str, typer.Option(help="CSV column holding the assistant answer.")] = "label",
    system: Annotated[Optional[str], typer.Option(help="System prompt to put first in every example.")] = None,
    delimiter: Annotated[Optional[str], typer.Option(help="CSV field delimiter (default: tab for .tsv, else comma).")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="Write the good rows and report the bad ones, instead of failing.")] = False,
    force: ForceOption = False,
) -> None:
    """Convert CSV or prompt/completion JSONL into chat JSONL (written atomically)."""
    from selftune.data.convert import convert_csv, convert_prompt_completion

    suffix = source.suffix.lower()
    fmt = source_format or (SourceFormat.csv if suffix in (".csv", ".tsv") else SourceFormat.prompt_completion)
    if fmt is SourceFormat.csv:
        summary = convert_csv(source, dest, user_column=user_column, assistant_column=assistant_column,
                              system_prompt=system, delimiter=delimiter or ("\t" if suffix == ".tsv" else ","),
                              force=force, skip_invalid=skip_invalid)
    else:
        summary = convert_prompt_completion(source, dest, system_prompt=system, force=force, skip_invalid=skip_invalid)
    for problem in summary.problems:
        out.print(problem.format(str(source)), markup=False)
    if summary.problems_not_shown:
        out.print(f"{source}: ... and {summary.problems_not_shown:,} more problems not shown", markup=False)
    if not summary.ok:
        out.print(f"[red]✗[/] {source}: not converted; fix the rows above or pass --skip-invalid")
        raise typer.Exit(1)
    skipped = f", skipped {count_of(summary.skipped, 'bad row')}" if summary.skipped else ""
    mark = "[green]✓[/]" if summary.written else "[red]✗[/]"
    out.print(f"{mark} wrote {count_of(summary.written, 'example')} to {dest}{skipped}")
    if not summary.written:
        raise typer.Exit(1)


@data_app.command("split")
def data_split(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="JSONL file to split.")],
    valid_fraction: Annotated[Optional[float], typer.Option(help="Share of examples for validation (default 0.1).")] = None,
    valid_size: Annotated[Optional[int], typer.Option(help="Number of examples for validation.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same split.")] = 0,
    stratify: Annotated[bool, typer.Option(help="Keep each answer's share equal in both parts (classification).")] = False,
    train_out: Annotated[Optional[Path], typer.Option(help="Default: FILE with .train.jsonl")] = None,
    valid_out: Annotated[Optional[Path], typer.Option(help="Default: FILE with .valid.jsonl")] = None,
    force: ForceOption = False,
) -> None:
    """Seeded train/validation split, optionally stratified by the assistant's answer."""
    from selftune.data.split import split_file

    if valid_fraction is None and valid_size is None:
        valid_fraction = 0.1
    stem = file.with_suffix("") if file.suffix == ".jsonl" else file
    summary = split_file(file, train_out=train_out or Path(f"{stem}.train.jsonl"),
                         valid_out=valid_out or Path(f"{stem}.valid.jsonl"), valid_fraction=valid_fraction,
                         valid_size=valid_size, seed=seed, stratify=stratify, force=force)
    strata = f", stratified over {count_of(summary.strata, 'answer')}" if summary.strata else ""
    out.print(f"[green]✓[/] {count_of(summary.train, 'example')} -> {summary.train_path}, "
              f"{summary.valid:,} -> {summary.valid_path}{strata}")


class MethodOption(str, Enum):
    supervised = "supervised"
    dpo = "dpo"


def _auto(value: str, kind: type, option: str):
    """"auto" or a number, as the hosted API's hyperparameters take them."""
    if value == "auto":
        return value
    try:
        return kind(value)
    except ValueError:
        raise typer.BadParameter(f"expected 'auto' or a number, got {value!r}", param_hint=option) from None


def _seconds(value: str | None) -> float | None:
    """'600', '600s', '10m' or '1.5h' -> seconds."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (value[:-1], value[-1]) if value[-1:] in units else (value, "s")
    try:
        return float(number) * units[unit]
    except ValueError:
        raise typer.BadParameter(f"expected a duration like 600, 90s, 10m or 1.5h, got {value!r}",
                                 param_hint="--time-budget") from None


@app.command("train")
def train(
    train_file: Annotated[Path, typer.Option("--train", help="Training file (chat JSONL, or preference JSONL for dpo).")],
    valid_file: Annotated[Optional[Path], typer.Option("--valid", help="Validation file, evaluated every epoch.")] = None,
    model: ModelOption = DEFAULT_MODEL,
    method: Annotated[MethodOption, typer.Option(help="supervised or dpo.")] = MethodOption.supervised,
    full: Annotated[bool, typer.Option("--full", help="Train every weight instead of a LoRA adapter.")] = False,
    epochs: Annotated[str, typer.Option("--epochs", help="n_epochs: auto or N.")] = "auto",
    batch_size: Annotated[str, typer.Option(help="Examples per step on average: auto or N.")] = "auto",
    lr_multiplier: Annotated[str, typer.Option(help="learning_rate_multiplier: auto or X.")] = "auto",
    beta: Annotated[str, typer.Option(help="DPO beta: auto or X.")] = "auto",
    lora_rank: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    lora_alpha: Annotated[Optional[int], typer.Option(help="LoRA alpha (default 2 x rank).")] = None,
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = 0.0,
    lora_targets: Annotated[str, typer.Option(help="Modules that get adapters: all-linear, or names like q_proj,v_proj.")] = "all-linear",
    seed: Annotated[int, typer.Option(help="Seed for data order, initialisation and dropout.")] = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("selftune-out"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --out.")] = False,
    time_budget: Annotated[Optional[str], typer.Option(help="Finish within this time, e.g. 10m: the schedule is planned to fit.")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Cut examples longer than this many tokens.")] = None,
    eval_every: Annotated[Optional[int], typer.Option(help="Also evaluate every N steps.")] = None,
    early_stopping: Annotated[Optional[int], typer.Option(help="Stop after N evaluations without a better validation loss.")] = None,
    precision: Annotated[str, typer.Option(help="auto (bf16 where the hardware has it), bf16 or fp32.")] = "auto",
    events: Annotated[Optional[Path], typer.Option("--events", help="Append one JSON line per step/eval/checkpoint here.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Fine-tune a base model: LoRA (default) or --full, supervised or DPO."""
    from pydantic import ValidationError
    from transformers.utils import logging as transformers_logging

    from selftune.train import TrainConfig, run

    transformers_logging.disable_progress_bar()  # "Loading weights" bars; ours reports the training itself
    from selftune.train.dataset import InvalidTrainingFile

    try:
        config = TrainConfig(
            model=model, train_file=train_file, valid_file=valid_file, method=method.value, full=full,
            n_epochs=_auto(epochs, int, "--epochs"), batch_size=_auto(batch_size, int, "--batch-size"),
            learning_rate_multiplier=_auto(lr_multiplier, float, "--lr-multiplier"), beta=_auto(beta, float, "--beta"),
            lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
            lora_targets=lora_targets if lora_targets == "all-linear" else [t.strip() for t in lora_targets.split(",") if t.strip()],
            seed=seed, out=out_dir,
            resume=resume, time_budget=_seconds(time_budget), max_length=max_length, eval_every=eval_every,
            early_stopping_patience=early_stopping, precision=precision, events_file=events, progress=progress and out.is_terminal)
    except ValidationError as exc:
        raise SelftuneError("; ".join(_validation_message(e) for e in exc.errors())) from None
    try:
        result = run(config)
    except InvalidTrainingFile as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under accelerate launch / torchrun the first process reports for all
    state = result.state
    final = next((r for r in reversed(state.results) if r.get("valid_loss") is not None), state.results[-1])
    valid = (f", valid loss {final['valid_loss']:.4f}, valid token accuracy {final['valid_mean_token_accuracy']:.1%}"
             if final.get("valid_loss") is not None else "")
    speed = state.tokens_seen / state.elapsed if state.elapsed else 0
    out.print(f"{result.status}: {state.global_step:,} steps, {state.tokens_seen:,} tokens in {_duration(state.elapsed)} "
              f"({speed:,.0f} tokens/s); train loss {state.results[-1]['train_loss']:.4f}{valid}", markup=False)
    out.print(f"output: {result.out}", markup=False)


def _validation_message(error: dict) -> str:
    field = ".".join(str(p) for p in error.get("loc", ()))
    message = error.get("msg", "").removeprefix("Value error, ")
    return f"{field}: {message}" if field else message


@app.command("export")
def export(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Output folder of `selftune train`.")],
    merge: Annotated[bool, typer.Option("--merge", help="Merge the LoRA adapter into the base weights.")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (must not exist).")] = Path("selftune-merged"),
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
) -> None:
    """Write a standalone model folder that plain transformers loads."""
    from selftune.train.export import export_merged

    if not merge:
        raise typer.BadParameter("only --merge is supported: the adapter folder itself is the unmerged export",
                                 param_hint="--merge")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise typer.BadParameter(f"unknown dtype {dtype!r}", param_hint="--dtype")
    path = export_merged(folder, out_dir, dtype)
    out.print(f"merged model written to {path}", markup=False)


@models_app.command("list")
def models_list(as_json: JsonOption = False) -> None:
    """Bundled models and Hub models already in the local cache."""
    import json

    from selftune.models import list_models

    infos = list_models()
    if as_json:
        out.print(json.dumps([{**vars(i), "path": str(i.path) if i.path else None} for i in infos], indent=2),
                  markup=False)
        return
    table = Table(Column("model", no_wrap=True), "kind", "status", "description")
    for info in infos:
        status = "ready" if info.path else ("converts on first use" if info.available else "not installed")
        table.add_row(info.id, info.kind, status, info.description)
    out.print(table)


LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HomeOption = Annotated[Optional[Path], typer.Option("--home", help="SELFTUNE_HOME: database, files, jobs and models.")]


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    home: HomeOption = None,
    worker: Annotated[bool, typer.Option(help="Run a worker inside the server (--no-worker: API only).")] = True,
    insecure: Annotated[bool, typer.Option(help="Allow a non-loopback address without SELFTUNE_API_KEYS.")] = False,
) -> None:
    """Serve the OpenAI-compatible Files, Fine-tuning Jobs and Models APIs (point the openai SDK's base_url here)."""
    import uvicorn

    from selftune.api.app import create_app
    from selftune.config import get_settings

    if home is not None:
        os.environ["SELFTUNE_HOME"] = str(home)
    settings = _service_settings()
    keys = settings.organisations()
    if keys is None and host not in LOOPBACK and not insecure:
        raise SelftuneError(f"refusing to serve on {host} without API keys: anyone who can reach it could use it. "
                            "Set SELFTUNE_API_KEYS='key:org,...', or pass --insecure")
    mode = "local mode (no API keys)" if keys is None else f"{len(keys)} API key(s)"
    err.print(f"selftune {get_settings().home} on http://{host}:{port}/v1 ({mode}, "
              f"worker {'on' if worker else 'off'})", markup=False)
    uvicorn.run(create_app(settings, embedded_worker=worker), host=host, port=port, log_level="warning")


@app.command("worker")
def worker_command(home: HomeOption = None) -> None:
    """Run a worker alone: it trains queued jobs from SELFTUNE_DATABASE_URL (several may share one queue)."""
    import signal

    from selftune.jobs.worker import Worker
    from selftune.store.blobs import BlobStore
    from selftune.store.db import Database

    if home is not None:
        os.environ["SELFTUNE_HOME"] = str(home)
    settings = _service_settings()
    worker = Worker(db=Database(settings.database), blobs=BlobStore(settings.blobs_dir), jobs_dir=settings.jobs_dir,
                    concurrent_jobs=settings.concurrent_jobs, lease_seconds=settings.job_lease_seconds,
                    metrics_every=settings.metrics_every)
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop at a checkpoint and queue the jobs again
        signal.signal(sig, lambda *_: worker.stop())
    err.print(f"selftune worker {worker.id} on {settings.database.split('@')[-1]}", markup=False)
    worker.run_forever()


@app.command("chat")
def chat_command(
    model: Annotated[str, typer.Argument(help="A base model, a fine-tuned model (ft:...) or a checkpoint.")],
    base_url: Annotated[str, typer.Option(envvar="OPENAI_BASE_URL", help="The selftune server.")] = "http://127.0.0.1:8000/v1",
    api_key: Annotated[str, typer.Option(envvar="OPENAI_API_KEY", help="An API key (any, in local mode).")] = "local",
    system: Annotated[Optional[str], typer.Option(help="A system message to start the conversation with.")] = None,
    temperature: Annotated[float, typer.Option(min=0, max=2)] = 0.7,
    max_tokens: Annotated[int, typer.Option(min=1)] = 512,
) -> None:
    """Chat with a model on a running server, answers streamed as they are generated (Ctrl-D to quit)."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    messages = [{"role": "system", "content": system}] if system else []
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            break
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        answer = ""
        try:
            for chunk in client.chat.completions.create(model=model, messages=messages, stream=True,
                                                        temperature=temperature, max_tokens=max_tokens):
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    answer += piece
                    out.print(piece, end="", markup=False, soft_wrap=True)
        except openai.APIConnectionError:
            raise SelftuneError(f"no selftune server at {base_url}: start one with `selftune serve`") from None
        except openai.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            raise SelftuneError(f"{exc.status_code}: {body.get('message', exc.message)}") from None
        out.print()
        messages.append({"role": "assistant", "content": answer})


@app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Option("--data", help="Held-out chat JSONL: each example's last message is the "
                                                     "reference answer.")],
    models: Annotated[list[str], typer.Option("--model", "-m", help="A model to evaluate (repeat the option for "
                                                                    "several): ft:... or a base model.")],
    few_shot: Annotated[int, typer.Option("--few-shot", min=0, help="Examples in the prompt of base models "
                                                                  "(models not named ft:...).")] = 0,
    few_shot_from: Annotated[Optional[Path], typer.Option(help="The training file the few-shot examples and "
                                                               "the label set come from.")] = None,
    graders: Annotated[Optional[list[str]], typer.Option("--grader", help="exact, normalized, classification, "
                                                         "json, regex:PATTERN, embedding[:MODEL], judge:MODEL "
                                                         "(default: classification when the answers are "
                                                         "labels, else normalized).")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="Any OpenAI-compatible endpoint (default: the local "
                                                         "selftune server, started if none is running).")] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="OPENAI_API_KEY", help="API key of the endpoint.")] = None,
    judge_base_url: Annotated[Optional[str], typer.Option(help="Endpoint of the judge model, if elsewhere.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 4,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Evaluate a seeded random sample of this many "
                                                             "examples.")] = None,
    seed: int = 0,
    max_tokens: Annotated[Optional[int], typer.Option(min=1, help="Answer length cap (default: from the longest "
                                                                  "reference).")] = None,
    hourly_price: Annotated[float, typer.Option(min=0, help="Dollars an hour this machine costs (for the local "
                                                            "cost column).")] = 0.10,
    prices: Annotated[Optional[list[str]], typer.Option("--price", help="NAME=INPUT:OUTPUT dollars per million "
                                                        "tokens: adds what the same tokens would cost there.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where report.html, report.json and results.jsonl go.")]
    = Path("eval-report"),
) -> None:
    """Stage 3: run a held-out set through models and compare quality, prompt tokens, latency and cost."""
    from selftune.evals import EvalConfig, evaluate
    from selftune.evals.prices import parse_price
    from selftune.evals.report import print_summary, progress_bars

    config = EvalConfig(data=data, models=models, few_shot=few_shot, few_shot_from=few_shot_from,
                        graders=graders or [], base_url=base_url, api_key=api_key, concurrency=concurrency,
                        limit=limit, seed=seed, max_tokens=max_tokens, out=out_dir, hourly_price=hourly_price,
                        prices=[parse_price(p) for p in prices or []], judge_base_url=judge_base_url)
    with progress_bars(err) as progress:
        report = evaluate(config, progress)
    print_summary(report, out)
    out.print(f"report: {(out_dir / 'report.html').resolve()}", markup=False)


@app.command("distill")
def distill_command(
    out_file: Annotated[Path, typer.Option("--out", help="The training file to write (chat JSONL).")],
    prompts: Annotated[Optional[Path], typer.Option(help="Chat JSONL (a final assistant answer is dropped and "
                                                         "kept as the grader's reference) or text, a prompt a line.")]
    = None,
    teacher_base_url: Annotated[Optional[str], typer.Option(help="The teacher's OpenAI-compatible endpoint.")] = None,
    teacher_model: Annotated[Optional[str], typer.Option(help="The teacher model.")] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="OPENAI_API_KEY", help="The teacher's API key.")] = None,
    system: Annotated[Optional[str], typer.Option(help="A system message for prompts that have none.")] = None,
    samples: Annotated[int, typer.Option(min=1, help="Answers per prompt; with --grader the best is kept.")] = 1,
    temperature: Annotated[Optional[float], typer.Option(min=0, max=2, help="Default: 0 for one sample, 0.7 "
                                                                            "for several.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1)] = 1024,
    graders: Annotated[Optional[list[str]], typer.Option("--grader", help="Scores answers (see `selftune eval`) "
                                                                          "for best-of-K and --min-score.")] = None,
    min_score: Annotated[Optional[float], typer.Option(help="Drop prompts whose best answer scores lower.")] = None,
    keep_truncated: Annotated[bool, typer.Option(help="Keep answers cut off by --max-tokens.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 4,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds per request.")] = 120,
    max_retries: Annotated[int, typer.Option(min=0, help="Retries on 429, 5xx and connection errors, with "
                                                         "exponential backoff.")] = 5,
    cache: Annotated[Optional[Path], typer.Option(help="The resumable answer cache (default: OUT.cache.jsonl).")]
    = None,
    prices: Annotated[Optional[list[str]], typer.Option("--price", help="NAME=INPUT:OUTPUT dollars per million "
                                                        "tokens: the teacher's cost in the summary.")] = None,
    from_stored: Annotated[bool, typer.Option("--from-stored", help="Build the file from completions stored "
                                                                   "with store: true instead.")] = False,
    metadata: Annotated[Optional[list[str]], typer.Option("--metadata", help="key=value: only stored completions "
                                                                             "with this metadata.")] = None,
    base_url: Annotated[str, typer.Option(help="The server holding the stored completions.")]
    = "http://127.0.0.1:8000/v1",
    model: Annotated[Optional[str], typer.Option(help="Only stored completions of this model.")] = None,
) -> None:
    """Build a training set from a stronger model's answers (or from stored completions)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from selftune.distill import DistillConfig, distill
    from selftune.distill import from_stored as build_from_stored
    from selftune.evals.prices import parse_price

    if from_stored:
        pairs = [item.partition("=") for item in metadata or []]
        if any(not sep or not key for key, sep, _ in pairs):
            raise SelftuneError("--metadata takes key=value")
        summary = build_from_stored(base_url, api_key, out_file, {k: v for k, _, v in pairs}, model, keep_truncated)
    else:
        if not (prompts and teacher_base_url and teacher_model):
            raise SelftuneError("distill needs --prompts, --teacher-base-url and --teacher-model (or --from-stored)")
        config = DistillConfig(teacher_base_url=teacher_base_url, teacher_model=teacher_model, prompts=prompts,
                               out=out_file, api_key=api_key, system=system, samples=samples, temperature=temperature,
                               max_tokens=max_tokens, graders=graders or [], min_score=min_score,
                               keep_truncated=keep_truncated, concurrency=concurrency, timeout=timeout, max_retries=max_retries, cache=cache,
                               prices=[parse_price(p) for p in prices or []])
        with Progress(TextColumn("teacher answers"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err) as progress:
            def start(total: int):
                task = progress.add_task("", total=total)
                return lambda n: progress.advance(task, n)

            summary = distill(config, start)
    dropped = ", ".join(f"{n} {why}" for why, n in summary["dropped"].items()) or "none"
    out.print(f"✓ {summary['out']}: {summary['kept']} examples from {summary['prompts']} prompts "
              f"(dropped: {dropped})", markup=False)
    out.print(f"  teacher requests this run: {summary['requests_this_run']} "
              f"({summary['failed_requests_this_run']} failed), {summary['answers_reused_from_cache']} answers "
              f"reused from the cache; summary: {Path(summary['out']).with_suffix('.summary.json')}", markup=False)
    for problem in summary["check"]:
        err.print(f"warning: {problem}", markup=False)


def _service_settings():
    from pydantic import ValidationError

    from selftune.config import get_settings

    try:
        settings = get_settings()
        settings.organisations()
        settings.extra_base_models()
    except (ValidationError, ValueError) as exc:
        raise SelftuneError(str(exc).splitlines()[0]) from None
    return settings


def main() -> None:
    """Entry point: user mistakes end with one line on stderr and exit 2, never a traceback."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # library progress bars; selftune says what it is doing itself
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("selftune").setLevel(logging.INFO)
    try:
        app()  # usage errors are typer's: usage text on stderr and exit 2
    except SelftuneError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug in selftune: say so plainly, keep the traceback for debugging
        if os.environ.get("SELFTUNE_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} (set SELFTUNE_DEBUG=1 for the traceback)",
                  markup=False)
        sys.exit(EXIT_INTERNAL_ERROR)


if __name__ == "__main__":
    main()
