"""Load the base model and make it trainable: LoRA adapters through PEFT, or every weight.

Precision (chosen by :mod:`selftune.hardware`): on CPUs with bf16 support, LoRA keeps the
frozen base weights in bf16 (half the memory, no re-cast on every step — autocast only caches casts
of weights that require grad) and the adapter weights in fp32, with matmuls under bf16 autocast.
Full fine-tuning keeps fp32 master weights and computes under the same autocast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from selftune.errors import SelftuneError


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"
    layers: int | None = None  # only the top N decoder layers (None: all)


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
    config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type="CAUSAL_LM",
                        bias="none", **_placement(model, lora))
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as exc:  # PEFT's "Target modules ... not found" (NoMatchingPeftModuleError)
        raise SelftuneError(f"LoRA targets {lora.target_modules!r} don't match this model's layers "
                            f"({str(exc).rstrip('.')}); its linear layers are: {', '.join(_linear_names(model))}"
                            ) from None
    _adapters_in_fp32(peft_model)
    return peft_model


def _placement(model, lora: LoraSettings) -> dict:
    """Where adapters go. With ``layers``: PEFT's own layer selection (``layers_to_transform``) for the top
    N decoder layers; autograd then never enters the layers below the lowest adapter, so on a CPU where the
    step is matmul-bound (fp32) the backward pass shrinks with them. PEFT takes a layer selection only with a
    list of module names, so "all-linear" becomes the decoder layers' own linear names here."""
    if lora.layers is None:
        return {"target_modules": lora.target_modules}
    total = model.config.num_hidden_layers
    if lora.layers > total:
        raise SelftuneError(f"lora_layers={lora.layers}, but this model has {total} decoder layers")
    targets = lora.target_modules
    if targets == "all-linear":
        targets = _linear_names(model.model.layers)
    elif isinstance(targets, str):
        raise SelftuneError("lora_layers needs lora_targets as all-linear or a list of names, not a pattern")
    return {"target_modules": targets, "layers_to_transform": list(range(total - lora.layers, total)),
            "layers_pattern": "layers"}


def _linear_names(module: torch.nn.Module) -> list[str]:
    """The short names (``q_proj``, ...) of the linear layers under ``module``: what LoRA targets name."""
    return sorted({name.rsplit(".", 1)[-1] for name, child in module.named_modules()
                   if isinstance(child, torch.nn.Linear)})


def _adapters_in_fp32(model) -> None:
    """Adapter weights train in fp32; autocast runs their matmuls in bf16. PEFT would also cast each
    LoRA layer's input activations to fp32 first (a copy of every activation, ~8% of a CPU step,
    undone at once by autocast), so that cast is switched off."""
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    for module in model.modules():
        if hasattr(module, "lora_A"):
            module.cast_input_dtype_enabled = False


def load_full_for_training(folder: Path, device: torch.device):
    """Every weight trainable, in fp32 (the optimizer's master copy); ``folder`` is the base model or
    a full checkpoint."""
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa",
                                                 use_safetensors=True)
    model.config.use_cache = False
    return model.to(device).requires_grad_(True)


def load_adapter_for_training(folder: Path, adapter: Path, compute_dtype: torch.dtype | None,
                              device: torch.device) -> PeftModel:
    """Base model plus an existing adapter, trainable: to resume from a checkpoint, or to fine-tune a
    fine-tuned model (its adapter's weights, rank and targets go on training)."""
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=compute_dtype or torch.float32,
                                                attn_implementation="sdpa", use_safetensors=True)
    base.config.use_cache = False
    model = PeftModel.from_pretrained(base.to(device), adapter, is_trainable=True)
    _adapters_in_fp32(model)
    return model


def causal_lm(model):
    """The transformers model under a PEFT wrapper (LoRA layers are injected into it in place)."""
    return model.get_base_model() if isinstance(model, PeftModel) else model


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
