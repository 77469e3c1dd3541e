"""Load the base model and make it trainable: LoRA adapters through PEFT, or every weight.

Precision (chosen by :mod:`selftune.train.hardware`): on CPUs with bf16 support, LoRA keeps the
frozen base weights in bf16 (half the memory, no re-cast on every step — autocast only caches casts
of weights that require grad) and the adapter weights in fp32, with matmuls under bf16 autocast.
Full fine-tuning keeps fp32 master weights and computes under the same autocast.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"


def load_for_training(folder: Path, lora: LoraSettings | None, compute_dtype: torch.dtype | None,
                      device: torch.device):
    """The model ready to train: a PeftModel (LoRA) or the plain model (full fine-tuning)."""
    frozen_dtype = compute_dtype if (lora is not None and compute_dtype is not None) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=frozen_dtype, attn_implementation="sdpa",
                                                 use_safetensors=True)
    model.config.use_cache = False
    model.to(device)
    if lora is None:
        return model.requires_grad_(True)
    config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, task_type="CAUSAL_LM", bias="none")
    with warnings.catch_warnings():  # PEFT reads a property transformers has deprecated; not the user's concern
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, config)
    for param in peft_model.parameters():
        if param.requires_grad:  # adapter weights train in fp32
            param.data = param.data.float()
    return peft_model


def load_full_for_training(folder: Path, device: torch.device):
    """Every weight trainable, in fp32 (the optimizer's master copy); ``folder`` is the base model or
    a full checkpoint."""
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa",
                                                 use_safetensors=True)
    model.config.use_cache = False
    return model.to(device).requires_grad_(True)


def load_adapter_for_training(folder: Path, adapter: Path, compute_dtype: torch.dtype | None,
                              device: torch.device) -> PeftModel:
    """Base model plus an existing adapter, trainable (used to resume)."""
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=compute_dtype or torch.float32,
                                                attn_implementation="sdpa", use_safetensors=True)
    base.config.use_cache = False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = PeftModel.from_pretrained(base.to(device), adapter, is_trainable=True)
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    return model


def causal_lm(model):
    """The transformers model under a PEFT wrapper (LoRA layers are injected into it in place)."""
    return model.get_base_model() if isinstance(model, PeftModel) else model


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
