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


def main() -> None:
    """Entry point: user mistakes end with one line on stderr and exit 2, never a traceback."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # library progress bars; selftune says what it is doing itself
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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
