"""What this CPU/GPU offers (vector and matrix features, bf16, cores) and the paths chosen for it.

The same 2-core machine type comes with AVX512-BF16 or with AVX2 only, and a bf16 matmul without
hardware support runs ~50x slower than fp32: every speed-dependent choice (training precision,
serving dtype, threads) is made here, once, by :func:`choose`, from a parsed description of the
machine. Parsing /proc/cpuinfo needs no torch; torch is imported only where it is asked about.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# The flags that decide a path, in the order they are printed (cpuinfo's own names).
X86_KEY_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
ARM_KEY_FEATURES = ("asimd", "sve", "sve2", "bf16", "i8mm")
FEATURE_NAMES = {"asimd": "neon"}  # ARM's cpuinfo calls NEON asimd

# ARM's cpuinfo has no model name: "CPU part" under implementer 0x41 (Arm Ltd) names the core.
ARM_PARTS = {"0xd08": "Cortex-A72", "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1", "0xd40": "Neoverse-V1",
             "0xd49": "Neoverse-N2", "0xd4f": "Neoverse-V2", "0xd84": "Neoverse-V3", "0xd8e": "Neoverse-N3"}


@dataclass(frozen=True)
class CPU:
    """One machine's CPU as /proc/cpuinfo describes it."""

    arch: str  # "x86_64", "aarch64", or platform.machine() where cpuinfo says neither
    model: str
    logical: int  # processors the kernel lists
    cores: int  # physical cores among them (hyper-threads folded)
    features: frozenset[str]
    core_of: dict[int, tuple[str, str]] = field(default_factory=dict, compare=False, repr=False)

    def has(self, *names: str) -> bool:
        return all(name in self.features for name in names)

    @property
    def key_features(self) -> list[str]:
        """The path-deciding features present, with their common names (neon, not asimd)."""
        keys = ARM_KEY_FEATURES if self.arch == "aarch64" else X86_KEY_FEATURES
        return [FEATURE_NAMES.get(name, name) for name in keys if name in self.features]

    @property
    def missing_features(self) -> list[str]:
        keys = ARM_KEY_FEATURES if self.arch == "aarch64" else X86_KEY_FEATURES
        return [FEATURE_NAMES.get(name, name) for name in keys if name not in self.features]

    @property
    def vector(self) -> str:
        """The widest vector/matrix unit torch's kernels can use here."""
        if self.arch == "aarch64":
            return "SVE" if self.has("sve") else "NEON" if self.has("asimd") else "scalar"
        if self.has("amx_tile", "amx_bf16"):
            return "AMX"
        if self.has("avx512f"):
            return "AVX512"
        if self.has("avx2", "fma"):
            return "AVX2+FMA"
        return "AVX" if self.has("avx") else "SSE"


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gib: float
    bf16: bool


@dataclass(frozen=True)
class Paths:
    """What selftune uses on a machine, and why: one answer for training, serving, estimates and benches."""

    device: str  # "cpu" or "cuda"
    precision: str  # training autocast: "bf16", "fp16" or "fp32"
    why: str
    serve_dtype: str  # what serve_dtype=auto loads the weights in
    threads: int  # compute threads per process
    matmuls: str  # which units the matmuls run on

    @property
    def bf16_native(self) -> bool:
        return self.precision == "bf16"


def parse_cpuinfo(text: str, machine: str | None = None) -> CPU:
    """A :class:`CPU` from the text of /proc/cpuinfo (x86 ``flags`` or ARM ``Features``)."""
    model, implementer, part = "", "", ""
    features: set[str] = set()
    core_of: dict[int, tuple[str, str]] = {}
    processor, physical = None, "0"
    arch = machine or ""
    for line in text.splitlines():
        key, _, value = (part_.strip() for part_ in line.partition(":"))
        if key == "processor" and value.isdigit():
            processor, physical = int(value), "0"
            core_of[processor] = ("0", str(processor))  # no core id (ARM, some VMs): one core each
        elif key == "physical id":
            physical = value
        elif key == "core id" and processor is not None:
            core_of[processor] = (physical, value)
        elif key == "model name" and not model:
            model = value
        elif key == "flags" and not features:
            features, arch = set(value.split()), arch or "x86_64"
        elif key == "Features" and not features:
            features, arch = set(value.split()), arch or "aarch64"
        elif key == "CPU implementer" and not implementer:
            implementer = value
        elif key == "CPU part" and not part:
            part = value
    if implementer == "0x41" and part in ARM_PARTS:
        model = ARM_PARTS[part]
    elif not model and part:
        model = f"ARM implementer {implementer} part {part}"
    logical = len(core_of) or os.cpu_count() or 1
    cores = len(set(core_of.values())) or logical
    return CPU(arch=arch or platform.machine() or "unknown", model=model or platform.processor() or "unknown CPU",
               logical=logical, cores=cores, features=frozenset(features), core_of=core_of)


@functools.cache
def cpu() -> CPU:
    """This machine's CPU, read once."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""  # not Linux: no features known, so every choice is the safe one
    return parse_cpuinfo(text, platform.machine() or None)


@functools.cache
def gpu() -> GPU | None:
    """The first CUDA GPU torch sees, or None."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return GPU(name=props.name, memory_gib=round(props.total_memory / 2**30, 1), bf16=torch.cuda.is_bf16_supported())


def choose(cpu_: CPU, gpu_: GPU | None = None, *, processes: int = 1, cores: int | None = None) -> Paths:
    """The paths for this hardware. bf16 only where it is native (emulated bf16 is many times slower
    than fp32); ``cores``: the physical cores this process may use (default: all the CPU has)."""
    threads = max(1, (cores or cpu_.cores) // processes)
    if gpu_ is not None:
        precision = "bf16" if gpu_.bf16 else "fp16"
        why = f"{gpu_.name} computes {'bf16' if gpu_.bf16 else 'fp16 (it has no bf16)'} natively"
        return Paths("cuda", precision, why, precision, threads, f"{precision} matmuls on {gpu_.name}")
    if cpu_.arch == "aarch64":
        units = "SVE" if cpu_.has("sve") else "NEON"
        if cpu_.has("bf16"):
            # torch's ARM bf16 GEMMs (oneDNN+ACL) are fast, but the ops around them mostly are not and
            # bf16 training on ARM is unmeasured here: fp32 until a run shows bf16 is faster.
            return Paths("cpu", "fp32", "ARM bf16 instructions are present, but bf16 training through "
                         "torch is not measured faster on ARM yet: fp32 (precision=bf16 to try it)",
                         "fp32", threads, f"fp32 matmuls on {units}")
        return Paths("cpu", "fp32", "no ARM bf16 instructions: bf16 would be emulated", "fp32", threads,
                     f"fp32 matmuls on {units}")
    if cpu_.has("amx_tile", "amx_bf16"):
        return Paths("cpu", "bf16", "AMX-BF16: bf16 matmuls run on the matrix tiles", "bf16", threads,
                     "bf16 matmuls on AMX tiles (oneDNN)")
    if cpu_.has("avx512_bf16"):
        return Paths("cpu", "bf16", "AVX512-BF16: bf16 dot products are native", "bf16", threads,
                     "bf16 matmuls on AVX512-BF16 (oneDNN)")
    units = cpu_.vector
    return Paths("cpu", "fp32", f"no AVX512-BF16 or AMX ({units} only): bf16 would be emulated", "fp32",
                 threads, f"fp32 matmuls on {units}")


def paths(processes: int = 1, device: torch.device | None = None) -> Paths:
    """The paths on this machine (``device``: the one a caller already chose; default: the GPU if any)."""
    on_gpu = gpu() if device is None or device.type == "cuda" else None
    return choose(cpu(), on_gpu, processes=processes, cores=physical_cores())


def training_device() -> torch.device:
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def autocast_dtype(device: torch.device, requested: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``requested`` ("auto", "bf16", "fp32") on ``device``; None: fp32."""
    import torch

    if requested == "fp32":
        return None
    if requested == "bf16":
        return torch.bfloat16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(paths(device=device).precision)


def _cgroup_cpus() -> int | None:
    """CPUs a cgroup-v2 quota allows (a container given 2 CPUs on a 64-core host), or None."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def physical_cores() -> int:
    """Cores (not hyper-threads) this process may run on: a second thread per core only adds
    contention to matmul-bound work."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    core_of = cpu().core_of
    cores = len({core_of[p] for p in allowed if p in core_of}) or len(allowed)
    quota = _cgroup_cpus()
    return max(1, min(cores, quota) if quota else cores)


def set_threads(processes: int = 1) -> int:
    """One compute thread per physical core, shared out among the training processes on this machine."""
    import torch

    threads = paths(processes, device=torch.device("cpu")).threads
    torch.set_num_threads(threads)
    return threads


def torch_view() -> dict[str, Any]:
    """What torch itself detected: its kernel level, its own cpuinfo's bf16/AMX flags, oneDNN."""
    import torch

    caps = dict(getattr(torch.cpu, "get_capabilities", dict)())  # public in recent torch, absent in older
    seen = [name for name in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16") if caps.get(name)]
    return {"torch": torch.__version__, "kernels": torch.backends.cpu.get_cpu_capability(),
            "bf16_flags": seen if caps else None, "onednn": torch.backends.mkldnn.is_available()}


DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def matmul_gflops(dtype: str = "fp32", shapes: list[tuple[int, int, int]] | None = None,
                  seconds: float = 0.3) -> float:
    """Peak GFLOP/s of ``dtype`` matmuls of ``shapes`` (m, k, n; default a square that suits the
    dtype), on the threads already set, over ``seconds`` in all."""
    import torch

    shapes = shapes or [square_size(dtype, seconds)]
    best = 0.0
    for m, k, n in shapes:
        a, b = (torch.randn(rows, cols, dtype=getattr(torch, DTYPES[dtype])) for rows, cols in ((m, k), (k, n)))
        a @ b  # warm-up: oneDNN builds its kernel on the first call
        best = max(best, 2 * m * k * n / _fastest_call(a, b, seconds / len(shapes)) / 1e9)
    return best


def _fastest_call(a: torch.Tensor, b: torch.Tensor, seconds: float) -> float:
    """The fastest of the calls that fit in ``seconds`` (at least one): a call that another process
    preempted says nothing about the hardware."""
    import torch

    fastest, spent = math.inf, 0.0
    with torch.no_grad():
        while spent == 0.0 or spent < seconds:
            start = time.perf_counter()
            a @ b
            took = time.perf_counter() - start
            fastest, spent = min(fastest, took), spent + took
    return fastest


def square_size(dtype: str, seconds: float = 0.3) -> tuple[int, int, int]:
    """1024 where ``dtype``'s matmuls are fast, 512 where they are emulated (one 1024 bf16 matmul
    takes ~1 s on an AVX2-only CPU). Smaller ones would time thread wake-ups, not arithmetic."""
    import torch

    a = torch.randn(512, 512, dtype=getattr(torch, DTYPES[dtype]))
    a @ a
    n = 512 if _fastest_call(a, a, 0) > seconds / 8 else 1024
    return n, n, n


def matmul_peaks(seconds: float = 0.3) -> dict[str, Any]:
    """fp32 and bf16 square-matmul GFLOP/s on the threads training uses, and bf16's speed relative to
    fp32. The two alternate in short bursts, so other work on the machine slows both alike; the load
    average says how busy the machine was."""
    import torch

    threads = set_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    sizes = {dtype: square_size(dtype, seconds)[0] for dtype in ("fp32", "bf16")}
    pairs = {dtype: [torch.randn(n, n, dtype=getattr(torch, DTYPES[dtype])) for _ in range(2)]
             for dtype, n in sizes.items()}
    fastest = dict.fromkeys(sizes, math.inf)
    for _ in range(3):
        for dtype, (a, b) in pairs.items():
            fastest[dtype] = min(fastest[dtype], _fastest_call(a, b, seconds / 3))
    fp32, bf16 = (2 * sizes[d] ** 3 / fastest[d] / 1e9 for d in ("fp32", "bf16"))
    return {"fp32_gflops": round(fp32, 1), "bf16_gflops": round(bf16, 1), "bf16_vs_fp32": round(bf16 / fp32, 2),
            "threads": threads, "fp32_size": sizes["fp32"], "bf16_size": sizes["bf16"],
            "load_average": round(load, 1) if load is not None else None}


def describe() -> str:
    """One line naming the hardware a figure was measured on, for every benchmark's first line."""
    c, p = cpu(), paths()
    on = f"{gpu().name} · " if p.device == "cuda" else ""
    return (f"{on}{c.model} ({c.arch}) · {c.cores} cores · {' '.join(c.key_features) or 'no vector features'} "
            f"· {p.precision} · {p.threads} threads")


def bf16_note(chosen: Paths, peaks: dict[str, Any] | None) -> str | None:
    """One plain sentence when the measured bf16 speed and the chosen precision need explaining."""
    if chosen.device != "cpu" or not peaks:
        return None
    ratio = peaks["bf16_vs_fp32"]
    slower = f"{1 / ratio:.0f}" if ratio < 0.1 else f"{1 / ratio:.1f}"
    if not chosen.bf16_native and ratio < 1:
        return f"bf16 is emulated here ({slower}× slower than fp32): training and serving use fp32"
    if not chosen.bf16_native:
        return (f"bf16 matmuls measured {ratio:.1f}× fp32 here but bf16 is not chosen on this CPU: training and "
                "serving use fp32 (precision=bf16 / SELFTUNE_SERVE_DTYPE=bf16 to try it)")
    if ratio < 1:
        return (f"bf16 is native here but measured {slower}× slower than fp32 in this run (a busy machine?): "
                "if that holds, use precision=fp32")
    return None


def report(measure: bool = True, cpuinfo: str | None = None) -> dict[str, Any]:
    """Everything ``selftune doctor`` prints: what was found, what will be used, the measured peaks.
    ``cpuinfo``: describe the CPU of that /proc/cpuinfo text instead (nothing measured: not this machine)."""
    if cpuinfo is None:
        c, g, usable, seen = cpu(), gpu(), physical_cores(), torch_view()
    else:
        c, g, usable, seen, measure = parse_cpuinfo(cpuinfo), None, None, None, False
    chosen = choose(c, g, cores=usable)
    peaks = matmul_peaks() if measure else None
    return {
        "cpu": {"model": c.model, "arch": c.arch, "cores": c.cores, "logical": c.logical,
                "usable_cores": usable or c.cores, "vector": c.vector, "features": c.key_features,
                "missing": c.missing_features},
        "torch": seen,
        "gpu": asdict(g) if g else None,
        "paths": {**asdict(chosen), "bf16_native": chosen.bf16_native},
        "matmul": peaks,
        "note": bf16_note(chosen, peaks),
        "sharing": _sharing() if cpuinfo is None else None,
    }


def _sharing() -> dict[str, Any]:
    from selftune.threads import report as threads_report

    return threads_report()
