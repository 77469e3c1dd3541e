"""GGUF -> safetensors folder, so every later load is a fast, safe, memory-mapped read.

transformers dequantizes GGUF tensors on load (tens of seconds for 135M) and cannot save a model
it loaded that way, so we copy the weights into a plain model built from the same config.
"""

from __future__ import annotations

import json
from pathlib import Path


def convert_gguf(gguf_path: Path, out_dir: Path, source: dict) -> None:
    """Write config, fp32 safetensors weights, tokenizer and chat template of ``gguf_path``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)

    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights we write are plain fp32
    config._name_or_path = source.get("hub_id", "")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.generation_config = quantized.generation_config

    plain.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "selftune-source.json").write_text(json.dumps(source, indent=2) + "\n")
