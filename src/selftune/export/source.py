"""What ``selftune export`` reads: a run folder, a fine-tuned model or checkpoint of the local store, or a
base model, each turned into the same three things — base weights, optional adapter, tokenizer.

The store is only read (one short read transaction, then files): exporting works while the server and
worker run, and nothing is moved or written beside the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from selftune.errors import SelftuneError
from selftune.models.adapter import ADAPTER_CONFIG
from selftune.train.events import TRAINING_JSON

TOKENIZER_CONFIG = "tokenizer_config.json"


@dataclass(frozen=True)
class ExportSource:
    name: str  # what the user gave, for messages and file names
    base: str  # what resolve_model() takes: a bundled id, a folder or a Hub id
    adapter: Path | None  # a PEFT LoRA folder, or None (full weights, or the base model itself)
    weights: Path | None  # a full fine-tune's folder (None: the base's weights, plus the adapter if any)
    tokenizer: Path | None  # the tokenizer training used (None: the base model's own)

    def tokenizer_folder(self) -> Path:
        return self.tokenizer or self.weights or base_folder(self.base)


def base_folder(base: str) -> Path:
    from selftune.models.catalog import base_models
    from selftune.models.resolve import resolve_model

    offered = base_models()
    return resolve_model(offered[base].source if base in offered else base)


def find_source(model_or_run: str) -> ExportSource:
    """``model_or_run``: an output folder of ``selftune train`` or a job, a checkpoint folder inside one,
    ``ft:...`` (a fine-tuned model or ``...:ckpt-step-N`` checkpoint of the local store), or a base model."""
    from selftune.models.ids import parse_fine_tuned_id

    folder = Path(model_or_run).expanduser()
    if (folder / TRAINING_JSON).is_file():
        return from_run(folder)
    if (folder / ADAPTER_CONFIG).is_file():
        return _from_checkpoint(folder, model_or_run)
    if parse_fine_tuned_id(model_or_run) is not None:
        return _from_store(model_or_run)
    if folder.is_dir() and (folder / "config.json").is_file():  # a model folder, or a full fine-tune's checkpoint
        return ExportSource(model_or_run, str(folder), None, None, None)
    if folder.is_dir():
        raise SelftuneError(f"{folder} is not a finished selftune run (no {TRAINING_JSON}), a LoRA checkpoint "
                            f"(no {ADAPTER_CONFIG}) or a model folder (no config.json)")
    from selftune.models.catalog import base_models

    if model_or_run in base_models():
        return ExportSource(model_or_run, model_or_run, None, None, None)
    raise SelftuneError(f"{model_or_run!r} is not a run folder, a fine-tuned model id (ft:...) of this store, "
                        f"or a base model ({', '.join(sorted(base_models())) or 'none offered'})")


def from_run(folder: Path) -> ExportSource:
    record = json.loads((folder / TRAINING_JSON).read_text())
    lora = record.get("adapter") == "lora"
    return ExportSource(str(folder), record["base_model"], folder if lora else None, None if lora else folder,
                        folder if (folder / TOKENIZER_CONFIG).is_file() else None)


def _from_checkpoint(folder: Path, name: str) -> ExportSource:
    """A LoRA checkpoint folder (``OUT/checkpoints/step-N``): its run folder, two levels up, has the tokenizer
    only once the run finished, so the base is read from the adapter's own config."""
    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    run = folder.parent.parent
    record_file = run / TRAINING_JSON
    base = (json.loads(record_file.read_text())["base_model"] if record_file.is_file()
            else config.get("base_model_name_or_path"))
    if not base:
        raise SelftuneError(f"{folder / ADAPTER_CONFIG} names no base model (base_model_name_or_path)")
    tokenizer = next((f for f in (folder, run) if (f / TOKENIZER_CONFIG).is_file()), None)
    return ExportSource(str(folder), base, folder, None, tokenizer)


def _from_store(model_id: str) -> ExportSource:
    """A fine-tuned model or checkpoint of this machine's store, whichever organisation owns it: the command
    line is the operator's, who owns every file under SELFTUNE_HOME anyway."""
    from sqlalchemy import select

    from selftune.config import get_settings
    from selftune.models.ids import base_model_of, parse_fine_tuned_id
    from selftune.store.db import Database
    from selftune.store.tables import CheckpointRow, JobRow, ModelRow

    parsed = parse_fine_tuned_id(model_id)
    db = Database(get_settings().database)
    try:
        with db.transaction() as session:
            if parsed.step is None:
                row = session.scalar(select(ModelRow).where(ModelRow.id == model_id))
            else:
                row = session.scalar(select(CheckpointRow).where(CheckpointRow.model == model_id))
            job = row and session.scalar(select(JobRow).where(JobRow.id == row.job_id))
    finally:
        db.dispose()
    if row is None or job is None:
        raise SelftuneError(f"no fine-tuned model {model_id!r} in the store at {get_settings().database}")
    folder = Path(row.path)
    if not folder.is_dir():
        raise SelftuneError(f"the weights of {model_id} are gone from {folder}")
    lora = (folder / ADAPTER_CONFIG).is_file()
    tokenizer = next((f for f in (folder, folder.parent.parent) if (f / TOKENIZER_CONFIG).is_file()), None)
    # a second-generation model's job names its parent (ft:...); the weights sit on the parent's base
    return ExportSource(model_id, base_model_of(job.model), folder if lora else None, None if lora else folder,
                        tokenizer)
