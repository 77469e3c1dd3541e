"""What the machine offers a training run: device, bf16 support, thread count."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def training_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def autocast_dtype(device: torch.device, requested: str = "auto") -> torch.dtype | None:
    """bf16 where the hardware does it natively (CPU with AVX512-BF16/AMX, or a GPU), else None (fp32)."""
    if requested == "fp32":
        return None
    if requested == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_has_bf16() else None


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def physical_cores() -> int:
    """Cores (not hyper-threads) this process may run on: a second thread per core only adds
    contention to matmul-bound work."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores: set[tuple[str, str]] = set()
    try:
        processor = physical = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "processor":
                processor = int(value)
            elif key == "physical id":
                physical = value
            elif key == "core id" and processor in allowed:
                cores.add((physical or "0", value))
    except (OSError, ValueError):
        pass
    return max(1, min(len(cores), len(allowed)) if cores else len(allowed))


def set_threads(processes: int = 1) -> int:
    """One compute thread per physical core, shared out among the training processes on this machine."""
    threads = max(1, physical_cores() // processes)
    torch.set_num_threads(threads)
    return threads
