"""``selftune export``: turn a LoRA output folder into a merged model plain transformers loads."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from selftune.errors import SelftuneError
from selftune.models.resolve import resolve_model
from selftune.store.atomic import atomic_directory
from selftune.train.events import TRAINING_JSON


def export_merged(folder: Path, out: Path, dtype: str = "float32") -> Path:
    """Merge the adapter in ``folder`` into its base model and save the result to ``out``."""
    folder, out = Path(folder), Path(out)
    record_file = folder / TRAINING_JSON
    if not record_file.is_file():
        raise SelftuneError(f"{folder} is not a finished selftune run (no {TRAINING_JSON})")
    if out.exists():
        raise SelftuneError(f"{out} already exists; choose a new folder")
    record = json.loads(record_file.read_text())
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    if record.get("adapter") == "lora":
        base = AutoModelForCausalLM.from_pretrained(resolve_model(record["base_model"]), dtype=torch.float32,
                                                    use_safetensors=True)
        model = PeftModel.from_pretrained(base, folder).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True)
    model = model.to(torch_dtype)
    model.config.use_cache = True
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(folder).save_pretrained(tmp)
        (tmp / TRAINING_JSON).write_text(record_file.read_text())
    return out
