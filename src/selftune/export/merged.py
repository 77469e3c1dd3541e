"""``selftune export --merge``: turn a LoRA output folder into a merged model plain transformers loads."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer

from selftune.errors import SelftuneError
from selftune.export.source import ExportSource, base_folder, from_run
from selftune.store.atomic import atomic_directory
from selftune.train.events import TRAINING_JSON


def merged_model(source: ExportSource):
    """The fp32 model ``source`` describes, its LoRA adapter (if any) merged into the base weights."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = source.weights or base_folder(source.base)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True)
    if source.adapter is not None:
        model = PeftModel.from_pretrained(model, source.adapter).merge_and_unload()
    model.config.use_cache = True
    return model.eval()


def export_merged(folder: Path, out: Path, dtype: str = "float32") -> Path:
    """Merge the adapter in ``folder`` into its base model and save the result to ``out``."""
    folder, out = Path(folder), Path(out)
    record_file = folder / TRAINING_JSON
    if not record_file.is_file():
        raise SelftuneError(f"{folder} is not a finished selftune run (no {TRAINING_JSON})")
    if out.exists():
        raise SelftuneError(f"{out} already exists; choose a new folder")
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model = merged_model(from_run(folder)).to(torch_dtype)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(folder).save_pretrained(tmp)
        (tmp / TRAINING_JSON).write_text(record_file.read_text())
    return out
