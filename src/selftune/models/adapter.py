"""A LoRA adapter folder as PEFT saves it: the file names every reader checks live here, once."""

from __future__ import annotations

from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)  # a fine-tuned model's weights, as PEFT saves them


def is_adapter_folder(folder: Path) -> bool:
    """Both files present: a folder with only the config is a checkpoint being written or a broken copy."""
    return all((Path(folder) / name).is_file() for name in ADAPTER_FILES)
