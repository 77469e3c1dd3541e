"""How fast this machine trains a model, measured once and cached per model and machine.

A time estimate built from a published figure would be wrong on every machine but one, so we
time a few real LoRA training steps (forward, backward, optimizer) on the model itself.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from selftune.config import get_settings
from selftune.store.atomic import atomic_write

CALIBRATION_TOKENS = 512  # tokens per measured step
MEASURED_STEPS = 2


class Calibration(BaseModel):
    model: str
    machine: str
    tokens_per_second: float
    method: str
    measured_at: str


def machine_fingerprint() -> str:
    """CPU model, core count and torch version: what decides training speed here."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no-gpu"
    return f"{cpu} | {os.cpu_count()} cpus | {gpu} | torch {torch.__version__}"


def _cache_file(model: str, machine: str) -> Path:
    key = hashlib.sha256(f"{model}\n{machine}".encode()).hexdigest()[:16]
    return get_settings().calibration_dir / f"{key}.json"


def record_training_speed(model: str, tokens_per_second: float, method: str) -> Calibration:
    """Store the speed a real training run reached (stage 2 calls this), so later estimates use it
    instead of the quick calibration."""
    machine = machine_fingerprint()
    result = Calibration(model=model, machine=machine, tokens_per_second=tokens_per_second, method=method,
                         measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    with atomic_write(_cache_file(model, machine)) as f:
        f.write(result.model_dump_json(indent=2))
    return result


def training_speed(model: str, refresh: bool = False) -> Calibration:
    """Tokens per second of LoRA training for ``model`` on this machine: the last ``selftune train``
    run's figure when there is one, else a quick measurement (both cached)."""
    machine = machine_fingerprint()
    cache = _cache_file(model, machine)
    if cache.is_file() and not refresh:
        try:
            return Calibration.model_validate_json(cache.read_text())
        except ValueError:
            pass  # a corrupt cache is re-measured, not trusted
    result = Calibration(
        model=model, machine=machine, tokens_per_second=_measure(model),
        method=f"LoRA r16 on all linear layers, {MEASURED_STEPS} steps of {CALIBRATION_TOKENS} tokens",
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    with atomic_write(cache) as f:
        f.write(result.model_dump_json(indent=2))
    return result


def _measure(model: str) -> float:
    """Time real training steps. The trainer of stage 2 records its own, faster, figures later."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from selftune.models.resolve import resolve_model

    torch.manual_seed(0)
    net = AutoModelForCausalLM.from_pretrained(resolve_model(model), dtype=torch.float32)
    with warnings.catch_warnings():  # PEFT calls a transformers API that warns of its own deprecation
        warnings.simplefilter("ignore", FutureWarning)
        net = get_peft_model(net, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    vocab = net.config.vocab_size
    ids = torch.randint(0, vocab, (1, CALIBRATION_TOKENS))
    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cuda":
        net, ids = net.cuda(), ids.cuda()

    def step() -> None:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            loss = net(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: first-call allocations and kernel selection are not training speed
    start = time.perf_counter()
    for _ in range(MEASURED_STEPS):
        step()
    if device_type == "cuda":
        torch.cuda.synchronize()
    return MEASURED_STEPS * CALIBRATION_TOKENS / (time.perf_counter() - start)
