"""``selftune``: the command line. Each command parses, calls one library function, prints the answer."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import annotated_types
import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Column, Table

from selftune.config import LOCAL_BASE_URL, ServeWeights
from selftune.data.problems import count_of
from selftune.distill.config import DistillConfig, StoredDistillConfig
from selftune.errors import SelftuneError
from selftune.evals.config import EvalConfig
from selftune.export.types import DEFAULT_GGUF_TYPE, GGUF_TYPES
from selftune.migrate.config import CaptureConfig, CompareConfig
from selftune.models.registry import DEFAULT_MODEL
from selftune.train.config import TrainConfig, config_problems

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


def option(config: type[BaseModel], name: str, *param_decls: str, hint: str = "", **kwargs: Any) -> Any:
    """A typer option for field ``name`` of ``config``: its help text and its range (ge/le) come from
    the field, so a command and the Python API can't drift apart. ``hint`` adds what only the command
    line needs to say (a syntax such as "auto or N")."""
    field = config.model_fields[name]
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge):
            kwargs.setdefault("min", constraint.ge)
        elif isinstance(constraint, annotated_types.Le):
            kwargs.setdefault("max", constraint.le)
    return typer.Option(*param_decls, help=" ".join(filter(None, [field.description, hint])), **kwargs)


class Defaults:
    """``Defaults(Config).field`` is that field's default: what a typer parameter's ``= ...`` takes, so
    the default lives in the config alone."""

    def __init__(self, config: type[BaseModel]):
        self._config = config

    def __getattr__(self, name: str) -> Any:
        field = self._config.model_fields[name]
        if field.is_required():
            raise AttributeError(f"{self._config.__name__}.{name} has no default")
        return field.get_default(call_default_factory=True)


TRAIN, EVAL, DISTILL, STORED = Defaults(TrainConfig), Defaults(EvalConfig), Defaults(DistillConfig), Defaults(StoredDistillConfig)
CAPTURE, COMPARE = Defaults(CaptureConfig), Defaults(CompareConfig)
# the choices of a Literal field, as the option's type (typer lists them and refuses others)
TrainMethod = TrainConfig.model_fields["method"].annotation
Precision = TrainConfig.model_fields["precision"].annotation


def build(config: type[BaseModel], **values: Any) -> Any:
    """``config(**values)``, its validation errors as one line naming each field."""
    try:
        return config(**values)
    except ValidationError as exc:
        raise SelftuneError(config_problems(exc)) from None


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
    elif result.estimate.speed_problem:
        rows.append(("training time, this machine", f"unknown: {result.estimate.speed_problem}"))
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


def _auto(value: str, kind: type, flag: str):
    """"auto" or a number, as the hosted API's hyperparameters take them."""
    if value == "auto":
        return value
    try:
        return kind(value)
    except ValueError:
        raise typer.BadParameter(f"expected 'auto' or a number, got {value!r}", param_hint=flag) from None


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
    train_file: Annotated[Path, option(TrainConfig, "train_file", "--train")],
    valid_file: Annotated[Optional[Path], option(TrainConfig, "valid_file", "--valid")] = TRAIN.valid_file,
    model: Annotated[Optional[str], option(TrainConfig, "model", "--model", "-m", hint=(
        f"Default: the base of --init-adapter, else {DEFAULT_MODEL}."))] = None,
    method: Annotated[TrainMethod, option(TrainConfig, "method")] = TRAIN.method,
    full: Annotated[bool, option(TrainConfig, "full", "--full")] = TRAIN.full,
    epochs: Annotated[str, option(TrainConfig, "n_epochs", "--epochs", hint="Takes auto or N.")] = TRAIN.n_epochs,
    batch_size: Annotated[str, option(TrainConfig, "batch_size", hint="Takes auto or N.")] = TRAIN.batch_size,
    lr_multiplier: Annotated[str, option(TrainConfig, "learning_rate_multiplier", "--lr-multiplier", hint="Takes auto or a number.")] = TRAIN.learning_rate_multiplier,
    beta: Annotated[str, option(TrainConfig, "beta", hint="Takes auto or a number.")] = TRAIN.beta,
    lora_rank: Annotated[int, option(TrainConfig, "lora_rank")] = TRAIN.lora_rank,
    lora_alpha: Annotated[Optional[int], option(TrainConfig, "lora_alpha")] = TRAIN.lora_alpha,
    lora_dropout: Annotated[float, option(TrainConfig, "lora_dropout")] = TRAIN.lora_dropout,
    lora_layers: Annotated[Optional[int], option(TrainConfig, "lora_layers")] = TRAIN.lora_layers,
    lora_targets: Annotated[str, option(TrainConfig, "lora_targets", hint="Takes all-linear, or names like q_proj,v_proj.")] = TRAIN.lora_targets,
    seed: Annotated[int, option(TrainConfig, "seed")] = TRAIN.seed,
    out_dir: Annotated[Path, option(TrainConfig, "out", "--out")] = TRAIN.out,
    resume: Annotated[bool, option(TrainConfig, "resume", "--resume")] = TRAIN.resume,
    init_adapter: Annotated[Optional[str], option(TrainConfig, "init_adapter", "--init-adapter", hint=(
        "Takes a `selftune train` output folder, one of its checkpoints, or a fine-tuned model or checkpoint id "
        "(ft:...) of the local store."))] = None,
    time_budget: Annotated[Optional[str], option(TrainConfig, "time_budget", hint="Takes a duration: 600, 90s, 10m or 1.5h.")] = TRAIN.time_budget,
    max_length: Annotated[Optional[int], option(TrainConfig, "max_length")] = TRAIN.max_length,
    eval_every: Annotated[Optional[int], option(TrainConfig, "eval_every")] = TRAIN.eval_every,
    early_stopping: Annotated[Optional[int], option(TrainConfig, "early_stopping_patience", "--early-stopping")] = TRAIN.early_stopping_patience,
    keep_checkpoints: Annotated[int, option(TrainConfig, "keep_checkpoints")] = TRAIN.keep_checkpoints,
    precision: Annotated[Precision, option(TrainConfig, "precision")] = TRAIN.precision,
    share_prefixes: Annotated[bool, option(TrainConfig, "share_prefixes")] = TRAIN.share_prefixes,
    events: Annotated[Optional[Path], option(TrainConfig, "events_file", "--events")] = TRAIN.events_file,
    # on by default here (shown only when the output is a terminal), off in the Python API
    progress: Annotated[bool, option(TrainConfig, "progress")] = True,
    reserve_cores: ReserveCoresOption = None,
) -> None:
    """Fine-tune a base model: LoRA (default) or --full, supervised or DPO."""
    _share_cpu(reserve_cores)
    from transformers.utils import logging as transformers_logging

    from selftune.train import run

    transformers_logging.disable_progress_bar()  # "Loading weights" bars; ours reports the training itself
    from selftune.train.dataset import InvalidTrainingFile

    parent = _continued_adapter(init_adapter, model) if init_adapter else None
    config = build(
        TrainConfig, model=parent.base if parent else model or TRAIN.model,
        init_adapter=parent.adapter if parent else None,
        train_file=train_file, valid_file=valid_file, method=method, full=full,
        n_epochs=_auto(epochs, int, "--epochs"), batch_size=_auto(batch_size, int, "--batch-size"),
        learning_rate_multiplier=_auto(lr_multiplier, float, "--lr-multiplier"), beta=_auto(beta, float, "--beta"),
        lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_layers=lora_layers,
        lora_targets=lora_targets if lora_targets == "all-linear" else [t.strip() for t in lora_targets.split(",") if t.strip()],
        seed=seed, out=out_dir, resume=resume, time_budget=_seconds(time_budget), max_length=max_length,
        eval_every=eval_every, early_stopping_patience=early_stopping, keep_checkpoints=keep_checkpoints,
        precision=precision, share_prefixes=share_prefixes, events_file=events, progress=progress and out.is_terminal)
    try:
        result = run(config)
    except InvalidTrainingFile as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    from selftune.train.distributed import is_main_process

    if not is_main_process():
        return  # under accelerate launch / torchrun the first process reports for all
    state = result.state
    final = next((r for r in reversed(state.results) if r.get("valid_loss") is not None), state.results[-1])
    valid = (f", valid loss {final['valid_loss']:.4f}, valid token accuracy {final['valid_mean_token_accuracy']:.1%}"
             if final.get("valid_loss") is not None else "")
    speed = state.tokens_seen / state.elapsed if state.elapsed else 0
    out.print(f"{result.status}: {state.global_step:,} steps, {state.tokens_seen:,} tokens in {_duration(state.elapsed)} "
              f"({speed:,.0f} tokens/s); train loss {state.results[-1]['train_loss']:.4f}{valid}", markup=False)
    out.print(f"output: {result.out}", markup=False)


def _continued_adapter(given: str, model: str | None):
    """``--init-adapter``: found as ``selftune export`` finds a model (run folder, checkpoint, ``ft:`` id), so the
    base comes from the parent's own record; a ``--model`` that names another base is refused, not trained."""
    from selftune.export.source import find_source

    parent = find_source(given)
    if parent.adapter is None:
        raise SelftuneError(f"--init-adapter {given}: not a LoRA fine-tune (a full fine-tune or a base model); "
                            "only a LoRA adapter can be trained further")
    if model is not None and model != parent.base:  # another spelling of the same folder is the same base
        mine, theirs = (Path(name).expanduser().resolve() for name in (model, parent.base))
        if not (mine.is_dir() and mine == theirs):
            raise SelftuneError(f"--init-adapter {given} was trained on {parent.base}, not on --model {model}")
    return parent


class ExportFormat(str, Enum):
    hf = "hf"
    gguf = "gguf"


GgufType = Enum("GgufType", {name: name for name in GGUF_TYPES}, type=str)  # type: ignore[misc]
DEFAULT_GGUF = GgufType(DEFAULT_GGUF_TYPE)


@app.command("export")
def export(
    source: Annotated[str, typer.Argument(metavar="MODEL_OR_RUN", help=(
        "Output folder of `selftune train` (or a checkpoint folder in it); with --format gguf also a fine-tuned "
        "model or checkpoint id of the local store (ft:...) or a base model."))],
    format_: Annotated[ExportFormat, typer.Option("--format", help=(
        "hf: a transformers folder (needs --merge); gguf: GGUF for llama.cpp and Ollama, with a Modelfile."))]
        = ExportFormat.hf,
    merge: Annotated[bool, typer.Option("--merge", help="Merge the LoRA adapter into the base weights.")] = False,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help=(
        "Folder to write (must not exist); default selftune-merged or selftune-gguf."))] = None,
    dtype: Annotated[str, typer.Option(help="--format hf: float32, bfloat16 or float16.")] = "float32",
    gguf_type: Annotated[GgufType, typer.Option("--type", help=(
        "--format gguf: tensor type of the weights; f32 answers exactly as selftune does."))] = DEFAULT_GGUF,
    adapter_only: Annotated[bool, typer.Option("--adapter-only", help=(
        "--format gguf: a LoRA adapter GGUF beside a base GGUF written from the same weights, instead of "
        "one merged GGUF."))] = False,
) -> None:
    """Write the model for other software: a standalone transformers folder, or GGUF for llama.cpp/Ollama."""
    if format_ is ExportFormat.gguf:
        from selftune.export.to_gguf import export_gguf

        result = export_gguf(source, out_dir or Path("selftune-gguf"), gguf_type.value, adapter_only=adapter_only)
        written = f"{result.model}" + (f" + {result.adapter}" if result.adapter else "")
        out.print(f"GGUF written to {written}; Ollama: ollama create NAME -f {result.out / 'Modelfile'}",
                  markup=False)
        return
    from selftune.export.merged import export_merged

    if not merge:
        raise typer.BadParameter("only --merge is supported: the adapter folder itself is the unmerged export",
                                 param_hint="--merge")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise typer.BadParameter(f"unknown dtype {dtype!r}", param_hint="--dtype")
    path = export_merged(Path(source), out_dir or Path("selftune-merged"), dtype)
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


@app.command("doctor")
def doctor(
    as_json: JsonOption = False,
    cpuinfo: Annotated[Optional[Path], typer.Option(
        "--cpuinfo", help="Describe the CPU of this copy of another machine's /proc/cpuinfo instead "
                          "(what selftune would choose there; nothing is measured).")] = None,
) -> None:
    """What this machine's CPU and GPU offer, what selftune uses on it, and its measured matmul speed."""
    import json

    from selftune.hardware import report

    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace") if cpuinfo else None
    except OSError as exc:
        raise SelftuneError(f"--cpuinfo: cannot read {cpuinfo}: {exc.strerror}") from None
    found = report(cpuinfo=text)
    if as_json:
        out.print(json.dumps(found, indent=2, ensure_ascii=False), markup=False)
        return
    for line in _doctor_lines(found):
        out.print(line, markup=False)


_INT8_SHARE = {"fp32": "a quarter", "bf16": "half"}  # ServeWeights.INT8 against each dtype's weights


def _doctor_lines(found: dict[str, Any]) -> list[str]:
    c, t, g, p, m = found["cpu"], found["torch"], found["gpu"], found["paths"], found["matmul"]
    missing = f" · absent: {' '.join(c['missing'])}" if c["missing"] else ""
    lines = ["found",
             f"  CPU        {c['model']} ({c['arch']}, {c['vector']}), {c['cores']} cores, {c['logical']} logical, "
             f"{c['usable_cores']} usable",
             f"  features   {' '.join(c['features']) or 'none of the ones that matter'}{missing}"]
    if t:
        bf16_seen = " ".join(t["bf16_flags"]) if t["bf16_flags"] else "none" if t["bf16_flags"] is not None else "?"
        lines.append(f"  torch      {t['torch']}, ATen kernels {t['kernels']}, bf16 flags torch sees: {bf16_seen}, "
                     f"oneDNN {'yes' if t['onednn'] else 'no'}")
        lines.append(f"  GPU        {g['name']} ({g['memory_gib']} GiB, bf16 {'yes' if g['bf16'] else 'no'})" if g
                     else "  GPU        none")
    else:
        lines.append("  (from --cpuinfo: this machine's torch, GPU and speed are not looked at)")
    lines += ["will use",
              f"  training   {p['precision']} on {p['device']} — {p['why']}",
              f"  serving    {p['serve_dtype']} (serve_dtype=auto)",
              *([f"  weights    {ServeWeights.FULL.value} (serve_weights={ServeWeights.FULL.value}); "
                 f"{ServeWeights.INT8.value} would read {_INT8_SHARE[p['serve_dtype']]} of the "
                 "bytes per decode step, answers can differ (docs/api.md)"]
                if p["device"] == "cpu" and p["serve_dtype"] in _INT8_SHARE else []),
              *_sharing_lines(found.get("sharing"), p["threads"]),
              f"  matmuls    {p['matmuls']}"]
    if m:
        load, usable = m["load_average"], c["usable_cores"]
        busy = f", load {load} on {usable} cores: busy, so the figures are low" if load and load > usable else ""
        lines += [f"measured (square matmuls, {m['threads']} threads{busy})",
                  f"  fp32       {m['fp32_gflops']:,.1f} GFLOP/s ({m['fp32_size']}×{m['fp32_size']})",
                  f"  bf16       {m['bf16_gflops']:,.1f} GFLOP/s ({m['bf16_size']}×{m['bf16_size']}), "
                  f"{m['bf16_vs_fp32']:.2f}× fp32"]
    if found["note"]:
        lines.append(found["note"])
    return lines


def _sharing_lines(sharing: dict[str, Any] | None, threads: int) -> list[str]:
    """How a new training or serving process would share the CPU now (selftune.threads)."""
    if not sharing:  # --cpuinfo: another machine, nothing running there is known
        return [f"  threads    {threads} per process (one per physical core)"]
    others = ", ".join(f"{o['kind']} pid {o['pid']} ({o['threads']} thread(s))" for o in sharing["others"])
    return [f"  threads    {sharing['threads']} for a new training or serving process — {sharing['why']}",
            f"  sharing    reserved cores {sharing['reserved']}, other selftune compute processes: {others or 'none'}; "
            f"OpenMP waiting: {sharing['wait_policy']}"]


LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HomeOption = Annotated[Optional[Path], typer.Option("--home", help="SELFTUNE_HOME: database, files, jobs and models.")]


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    home: HomeOption = None,
    worker: Annotated[bool, typer.Option(help="Run a worker inside the server (--no-worker: API only).")] = True,
    insecure: Annotated[bool, typer.Option(help="Allow a non-loopback address without SELFTUNE_API_KEYS.")] = False,
    reserve_cores: ReserveCoresOption = None,
) -> None:
    """Serve the OpenAI-compatible Files, Fine-tuning Jobs and Models APIs (point the openai SDK's base_url here)."""
    _share_cpu(reserve_cores)
    from selftune.api.app import create_app
    from selftune.api.server import run
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
    run(create_app(settings, embedded_worker=worker), host, port)  # SIGTERM stops it as Ctrl-C does


@app.command("worker")
def worker_command(home: HomeOption = None, reserve_cores: ReserveCoresOption = None) -> None:
    """Run a worker alone: it trains queued jobs from SELFTUNE_DATABASE_URL (several may share one queue)."""
    _share_cpu(reserve_cores)
    import signal

    from selftune.jobs.worker import Worker

    if home is not None:
        os.environ["SELFTUNE_HOME"] = str(home)
    settings = _service_settings()
    worker = Worker.from_settings(settings)
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop at a checkpoint and queue the jobs again
        signal.signal(sig, lambda *_: worker.stop())
    err.print(f"selftune worker {worker.id} on {settings.database.split('@')[-1]}", markup=False)
    worker.run_forever()


@app.command("chat")
def chat_command(
    model: Annotated[str, typer.Argument(help="A base model, a fine-tuned model (ft:...) or a checkpoint.")],
    base_url: Annotated[str, typer.Option(envvar="OPENAI_BASE_URL", help="The selftune server.")] = LOCAL_BASE_URL,
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
    data: Annotated[Path, option(EvalConfig, "data", "--data")],
    models: Annotated[list[str], option(EvalConfig, "models", "--model", "-m")],
    few_shot: Annotated[int, option(EvalConfig, "few_shot", "--few-shot")] = EVAL.few_shot,
    few_shot_from: Annotated[Optional[Path], option(EvalConfig, "few_shot_from")] = EVAL.few_shot_from,
    graders: Annotated[Optional[list[str]], option(EvalConfig, "graders", "--grader")] = None,
    base_url: Annotated[Optional[str], option(EvalConfig, "base_url")] = EVAL.base_url,
    api_key: Annotated[Optional[str], option(EvalConfig, "api_key", envvar="OPENAI_API_KEY")] = EVAL.api_key,
    judge_base_url: Annotated[Optional[str], option(EvalConfig, "judge_base_url")] = EVAL.judge_base_url,
    concurrency: Annotated[int, option(EvalConfig, "concurrency")] = EVAL.concurrency,
    batch: Annotated[bool, option(EvalConfig, "batch")] = EVAL.batch,
    limit: Annotated[Optional[int], option(EvalConfig, "limit")] = EVAL.limit,
    seed: Annotated[int, option(EvalConfig, "seed")] = EVAL.seed,
    max_tokens: Annotated[Optional[int], option(EvalConfig, "max_tokens")] = EVAL.max_tokens,
    hourly_price: Annotated[float, option(EvalConfig, "hourly_price")] = EVAL.hourly_price,
    prices: Annotated[Optional[list[str]], option(EvalConfig, "prices", "--price")] = None,
    out_dir: Annotated[Path, option(EvalConfig, "out", "--out")] = EVAL.out,
    schema_file: Annotated[Optional[Path], option(EvalConfig, "schema_file", "--schema")] = EVAL.schema_file,
    home: HomeOption = None,
) -> None:
    """Stage 3: run a held-out set through models and compare quality, prompt tokens, latency and cost.
    The run is recorded in the store of SELFTUNE_HOME, for the dashboard's Evaluations page."""
    from selftune.evals import evaluate
    from selftune.evals.prices import parse_price
    from selftune.evals.report import print_summary, progress_bars

    if home is not None:  # the store it is recorded in, and that of the local server it may start
        os.environ["SELFTUNE_HOME"] = str(home)
    config = build(EvalConfig, data=data, models=models, few_shot=few_shot, few_shot_from=few_shot_from,
                   graders=graders or [], base_url=base_url, api_key=api_key, concurrency=concurrency, batch=batch,
                   limit=limit, seed=seed, max_tokens=max_tokens, out=out_dir, hourly_price=hourly_price,
                   prices=[parse_price(p) for p in prices or []], judge_base_url=judge_base_url,
                   schema_file=schema_file)
    with progress_bars(err) as progress:
        report = evaluate(config, progress)
    print_summary(report, out)
    out.print(f"report: {(out_dir / 'report.html').resolve()}", markup=False)
    _record_evaluation(config, report)


def _record_evaluation(config, report) -> None:
    """Keep the run in the store for the dashboard; a run that can't be recorded still succeeded."""
    from selftune.api.evaluations.service import dashboard_root, record_finished

    try:
        evaluation = record_finished(config, report)
    except Exception as exc:  # noqa: BLE001 - the evaluation itself is done; say why it is not listed
        err.print(f"not recorded in the store: {exc}", markup=False)
        return
    out.print(f"evaluation: {evaluation.id} · {dashboard_root(config.base_url)}evals/{evaluation.id}", markup=False)


@app.command("demo")
def demo_command(
    tasks: Annotated[Optional[list[str]], typer.Option(
        "--task", help="banking77 (labels) or restaurants (extraction to JSON); repeatable. Default: both.")] = None,
) -> None:
    """The end-to-end demo on real data (what `make demo` runs): fine-tune through the API, then compare
    with the 10-shot base model; both stories take about 15 minutes on a 2-core CPU."""
    from selftune.demo import STORIES
    from selftune.demo import main as run_demo

    for task in tasks or []:
        if task not in STORIES:
            raise typer.BadParameter(f"{task!r} is not one of: {', '.join(STORIES)}", param_hint="--task")
    run_demo(tasks or list(STORIES))


@app.command("distill")
def distill_command(
    out_file: Annotated[Path, option(DistillConfig, "out", "--out")],
    prompts: Annotated[Optional[Path], option(DistillConfig, "prompts")] = None,
    teacher_base_url: Annotated[Optional[str], option(DistillConfig, "teacher_base_url")] = None,
    teacher_model: Annotated[Optional[str], option(DistillConfig, "teacher_model")] = None,
    api_key: Annotated[Optional[str], option(DistillConfig, "api_key", envvar="OPENAI_API_KEY")] = DISTILL.api_key,
    system: Annotated[Optional[str], option(DistillConfig, "system")] = DISTILL.system,
    samples: Annotated[int, option(DistillConfig, "samples")] = DISTILL.samples,
    temperature: Annotated[Optional[float], option(DistillConfig, "temperature")] = DISTILL.temperature,
    max_tokens: Annotated[int, option(DistillConfig, "max_tokens")] = DISTILL.max_tokens,
    graders: Annotated[Optional[list[str]], option(DistillConfig, "graders", "--grader")] = None,
    min_score: Annotated[Optional[float], option(DistillConfig, "min_score")] = DISTILL.min_score,
    keep_truncated: Annotated[bool, option(DistillConfig, "keep_truncated")] = DISTILL.keep_truncated,
    concurrency: Annotated[int, option(DistillConfig, "concurrency")] = DISTILL.concurrency,
    batch: Annotated[bool, option(DistillConfig, "batch")] = DISTILL.batch,
    timeout: Annotated[float, option(DistillConfig, "timeout")] = DISTILL.timeout,
    max_retries: Annotated[int, option(DistillConfig, "max_retries")] = DISTILL.max_retries,
    cache: Annotated[Optional[Path], option(DistillConfig, "cache")] = DISTILL.cache,
    prices: Annotated[Optional[list[str]], option(DistillConfig, "prices", "--price")] = None,
    from_stored: Annotated[bool, typer.Option("--from-stored", help="Build the file from completions stored "
                                                                   "with store: true instead.")] = False,
    metadata: Annotated[Optional[list[str]], option(StoredDistillConfig, "metadata", "--metadata")] = None,
    base_url: Annotated[str, option(StoredDistillConfig, "base_url")] = STORED.base_url,
    model: Annotated[Optional[str], option(StoredDistillConfig, "model")] = STORED.model,
) -> None:
    """Build a training set from a stronger model's answers (or from stored completions)."""
    from selftune.distill import distill
    from selftune.distill import from_stored as build_from_stored
    from selftune.evals.prices import parse_price

    if from_stored:
        summary = build_from_stored(build(StoredDistillConfig, out=out_file, base_url=base_url, api_key=api_key,
                                          metadata=_key_values(metadata), model=model,
                                          keep_truncated=keep_truncated))
    else:
        if not (prompts and teacher_base_url and teacher_model):
            raise SelftuneError("distill needs --prompts, --teacher-base-url and --teacher-model (or --from-stored)")
        config = build(DistillConfig, teacher_base_url=teacher_base_url, teacher_model=teacher_model,
                       prompts=prompts, out=out_file, api_key=api_key, system=system, samples=samples,
                       temperature=temperature, max_tokens=max_tokens, graders=graders or [], min_score=min_score,
                       keep_truncated=keep_truncated, concurrency=concurrency, batch=batch, timeout=timeout,
                       max_retries=max_retries, cache=cache, prices=[parse_price(p) for p in prices or []])
        with _progress_bar("teacher answers") as progress:
            summary = distill(config, progress)
    _print_summary(summary)


@contextlib.contextmanager
def _progress_bar(what: str):
    """Yields a progress callback for distill-style runs, ``(total) -> advance(n)``: one bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err) as progress:
        def start(total: int):
            task = progress.add_task("", total=total)
            return lambda n: progress.advance(task, n)

        yield start


def _print_summary(summary) -> None:
    dropped = ", ".join(f"{n} {why}" for why, n in summary.dropped.items()) or "none"
    out.print(f"✓ {summary.out}: {summary.kept} examples from {summary.prompts} prompts "
              f"(dropped: {dropped})", markup=False)
    out.print(f"  teacher requests this run: {summary.requests_this_run} "
              f"({summary.failed_requests_this_run} failed), {summary.answers_reused_from_cache} answers "
              f"reused from the cache; summary: {Path(summary.out).with_suffix('.summary.json')}", markup=False)
    for problem in summary.check:
        err.print(f"warning: {problem}", markup=False)


# ---- migrate: leaving the hosted service ------------------------------------------------------------
migrate_app = typer.Typer(no_args_is_help=True, help="Leave the hosted fine-tuning service: inventory, capture, "
                                                     "replay, compare (docs/migrate.md).")
app.add_typer(migrate_app, name="migrate")
HostedKey = Annotated[Optional[str], typer.Option("--api-key", envvar="OPENAI_API_KEY",
                                                  help="The hosted service's API key (default: OPENAI_API_KEY).")]


def _hosted_client(base_url: str, api_key: str | None):
    import openai

    if not api_key:
        raise SelftuneError("--api-key (or OPENAI_API_KEY) is needed to read the hosted service")
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=5, timeout=120)


@migrate_app.command("inventory")
def migrate_inventory(
    api_key: HostedKey = None,
    base_url: Annotated[Optional[str], typer.Option(help="The service to take stock of (default: the hosted API).")] = None,
    data: Annotated[Optional[Path], typer.Option(help="A folder with your copies of the training files: a file of "
                                                      "the same name and size counts as a copy.")] = None,
    plan_file: Annotated[Path, typer.Option("--out", help="The plan to write (JSON).")] = Path("plan.json"),
) -> None:
    """Take stock: every fine-tuning job, checkpoint, file and stored completion of the organisation."""
    from selftune.migrate.hosted import HOSTED_BASE_URL
    from selftune.migrate.inventory import inventory
    from selftune.migrate.plan import save_plan

    url = base_url or HOSTED_BASE_URL
    if data is not None and not data.is_dir():
        raise SelftuneError(f"--data {data}: not a folder")
    with err.status("reading the service") as status:
        plan = inventory(_hosted_client(url, api_key), base_url=url, data_dir=data,
                         progress=lambda message: status.update(f"reading {message}"))
    save_plan(plan, plan_file)
    # ids fold rather than being cut short: they are what the next commands take
    table = Table(*(Column(name, overflow="fold") for name in ("job", "status", "base", "method", "fine-tuned model",
                                                               "training data", "stored completions", "replay")),
                  title=f"{url} · {len(plan.jobs)} jobs")
    for job in plan.jobs:
        record = plan.files.get(job.training_file)
        where = ("local copy" if record and record.local_copy else "downloadable" if record and record.downloadable
                 else "on the service, not downloadable" if record and record.on_service else "deleted")
        stored = job.stored_completions.count if job.stored_completions else 0
        table.add_row(job.id, job.status, job.model, job.method, job.fine_tuned_model or "–",
                      f"{record.filename if record and record.filename else job.training_file} ({where})",
                      f"{stored:,}", "yes" if job.replay else "no")
    out.print(table)
    out.print(f"plan: {plan_file}", markup=False)


@migrate_app.command("capture")
def migrate_capture(
    model: Annotated[str, option(CaptureConfig, "model", "--model")],
    out_file: Annotated[Path, option(CaptureConfig, "out", "--out")],
    api_key: HostedKey = None,
    base_url: Annotated[Optional[str], option(CaptureConfig, "base_url")] = None,
    from_stored: Annotated[bool, option(CaptureConfig, "from_stored")] = CAPTURE.from_stored,
    metadata: Annotated[Optional[list[str]], option(CaptureConfig, "metadata", "--metadata")] = None,
    prompts: Annotated[Optional[Path], option(CaptureConfig, "prompts")] = CAPTURE.prompts,
    system: Annotated[Optional[str], option(CaptureConfig, "system")] = CAPTURE.system,
    concurrency: Annotated[int, option(CaptureConfig, "concurrency")] = CAPTURE.concurrency,
    max_tokens: Annotated[int, option(CaptureConfig, "max_tokens")] = CAPTURE.max_tokens,
    keep_truncated: Annotated[bool, option(CaptureConfig, "keep_truncated")] = CAPTURE.keep_truncated,
    plan_file: Annotated[Optional[Path], option(CaptureConfig, "plan", "--plan")] = None,
) -> None:
    """Build a training file from the hosted model's behaviour: its stored completions and/or prompts."""
    from selftune.migrate.capture import capture

    if not api_key:
        raise SelftuneError("--api-key (or OPENAI_API_KEY) is needed to read the hosted service")
    config = build(CaptureConfig, model=model, out=out_file, api_key=api_key, from_stored=from_stored,
                   metadata=_key_values(metadata), prompts=prompts, system=system, concurrency=concurrency,
                   max_tokens=max_tokens, keep_truncated=keep_truncated, plan=plan_file,
                   **({"base_url": base_url} if base_url else {}))
    with _progress_bar("model answers") as progress:
        summary = capture(config, progress)
    _print_summary(summary)
    if plan_file:
        out.print(f"  recorded in {plan_file} for `selftune migrate replay`", markup=False)


@migrate_app.command("replay")
def migrate_replay(
    plan_file: Annotated[Path, typer.Argument(help="The plan `selftune migrate inventory` wrote.")],
    jobs: Annotated[Optional[list[str]], typer.Option("--job", help="Only this hosted job (repeat for several); "
                                                                    "default: those the plan marks replay: true.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Train every job on this local base model instead of the "
                                                      "hosted name (which SELFTUNE_MODEL_ALIASES maps).")] = None,
    base_url: Annotated[str, typer.Option(help="The selftune server to create the jobs on.")] = LOCAL_BASE_URL,
    api_key: Annotated[str, typer.Option("--api-key", envvar="SELFTUNE_API_KEY",
                                         help="That server's API key (any in local mode).")] = "local",
    source_api_key: Annotated[Optional[str], typer.Option(
        "--source-api-key", envvar="OPENAI_API_KEY",
        help="The hosted service's key, to download training files it allows to be downloaded.")] = None,
    follow: Annotated[bool, typer.Option(help="Follow each job to its end, printing its events.")] = True,
) -> None:
    """Recreate the plan's hosted jobs here: same method, hyperparameters, suffix, seed and metadata."""
    import openai

    from selftune.jobs.lifecycle import JobStatus
    from selftune.migrate.plan import load_plan
    from selftune.migrate.replay import ReplayOptions, replay

    plan = load_plan(plan_file)
    target = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=3, timeout=120)
    source = (openai.OpenAI(base_url=plan.source_base_url, api_key=source_api_key, max_retries=5, timeout=600)
              if source_api_key else None)
    done = replay(plan, target, source, ReplayOptions(plan_path=plan_file, jobs=jobs, model=model, follow=follow),
                  say=lambda line: out.print(line, markup=False))
    for job in done:
        r = job.replayed
        out.print(f"{job.id} -> {r.job_id}: {r.status}" + (f", {r.fine_tuned_model}" if r.fine_tuned_model else ""),
                  markup=False)
    if any(job.replayed.status == JobStatus.FAILED for job in done):
        raise typer.Exit(1)


@migrate_app.command("compare")
def migrate_compare(
    old: Annotated[str, option(CompareConfig, "old", "--old")],
    new: Annotated[str, option(CompareConfig, "new", "--new")],
    data: Annotated[Path, option(CompareConfig, "data", "--data")],
    old_api_key: Annotated[Optional[str], option(CompareConfig, "old_api_key", envvar="OPENAI_API_KEY")] = None,
    old_price: Annotated[Optional[str], option(CompareConfig, "old_price")] = None,
    base_url: Annotated[Optional[str], option(CompareConfig, "base_url")] = COMPARE.base_url,
    api_key: Annotated[Optional[str], option(CompareConfig, "api_key", envvar="SELFTUNE_API_KEY")] = COMPARE.api_key,
    graders: Annotated[Optional[list[str]], option(CompareConfig, "graders", "--grader")] = None,
    limit: Annotated[Optional[int], option(CompareConfig, "limit")] = COMPARE.limit,
    seed: Annotated[int, option(CompareConfig, "seed")] = COMPARE.seed,
    concurrency: Annotated[int, option(CompareConfig, "concurrency")] = COMPARE.concurrency,
    max_tokens: Annotated[Optional[int], option(CompareConfig, "max_tokens")] = COMPARE.max_tokens,
    hourly_price: Annotated[float, option(CompareConfig, "hourly_price")] = COMPARE.hourly_price,
    report_dir: Annotated[Path, option(CompareConfig, "out", "--out")] = COMPARE.out,
) -> None:
    """The old model and the new one on the same held-out prompts: agreement, quality, tokens, latency, cost."""
    from selftune.evals.prices import parse_price
    from selftune.evals.report import print_summary, progress_bars
    from selftune.migrate.compare import compare

    config = build(CompareConfig, old=old, new=new, data=data, old_api_key=old_api_key,
                   old_price=parse_price(old_price) if old_price else None, base_url=base_url, api_key=api_key,
                   graders=graders or [], limit=limit, seed=seed, concurrency=concurrency, max_tokens=max_tokens,
                   hourly_price=hourly_price, out=report_dir)
    with progress_bars(err) as progress:
        report = compare(config, progress)
    print_summary(report, out)
    out.print(f"report: {Path(report_dir) / 'report.html'}", markup=False)


def _key_values(items: list[str] | None) -> dict[str, str]:
    pairs = [item.partition("=") for item in items or []]
    if any(not sep or not key for key, sep, _ in pairs):
        raise SelftuneError("--metadata takes key=value")
    return {k: v for k, _, v in pairs}


def _service_settings():
    from selftune.config import get_settings
    from selftune.models.catalog import base_models

    try:
        settings = get_settings()
        settings.organisations()
        base_models()  # SELFTUNE_BASE_MODELS and SELFTUNE_MODEL_ALIASES, aliases checked against the models
    except (ValidationError, ValueError) as exc:
        raise SelftuneError(str(exc).splitlines()[0]) from None
    return settings


ReserveCoresOption = Annotated[Optional[int], typer.Option(
    "--reserve-cores", min=0, help="SELFTUNE_RESERVED_CORES: cores left to other programs; training and "
                                   "serving share out the rest.")]


def _share_cpu(reserve_cores: int | None) -> None:
    """The operator's reserved cores, for this process and the training children it starts
    (selftune.threads)."""
    from selftune.threads import RESERVED_ENV

    if reserve_cores is not None:
        os.environ[RESERVED_ENV] = str(reserve_cores)


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
