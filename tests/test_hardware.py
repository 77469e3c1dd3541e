"""What selftune finds on a CPU and the paths it picks there, from real /proc/cpuinfo samples of the
machines it runs on (tests/cpuinfo/), and `selftune doctor` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from selftune import hardware
from selftune.hardware import GPU, bf16_note, choose, parse_cpuinfo

SAMPLES = Path(__file__).parent / "cpuinfo"
SELFTUNE = str(Path(sys.executable).parent / "selftune")


def sample(name: str) -> hardware.CPU:
    return parse_cpuinfo((SAMPLES / f"{name}.txt").read_text())


def test_avx512_bf16_epyc():
    cpu = sample("epyc_avx512_bf16")
    assert (cpu.arch, cpu.model, cpu.cores, cpu.logical, cpu.vector) == ("x86_64", "AMD EPYC", 2, 2, "AVX512")
    assert cpu.key_features == ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"]
    assert cpu.missing_features == ["amx_tile", "amx_bf16"]
    paths = choose(cpu)
    assert (paths.device, paths.precision, paths.serve_dtype, paths.threads) == ("cpu", "bf16", "bf16", 2)
    assert paths.bf16_native and "AVX512-BF16" in paths.why and "AVX512-BF16" in paths.matmuls


def test_avx2_only_epyc_trains_and_serves_in_fp32():
    cpu = sample("epyc_avx2")
    assert (cpu.model, cpu.cores, cpu.vector) == ("AMD EPYC 7B12", 2, "AVX2+FMA")
    assert cpu.key_features == ["avx2", "fma"] and not any(f.startswith("avx512") for f in cpu.features)
    paths = choose(cpu)
    assert (paths.precision, paths.serve_dtype, paths.threads) == ("fp32", "fp32", 2)
    assert not paths.bf16_native and "emulated" in paths.why and paths.matmuls == "fp32 matmuls on AVX2+FMA"


def test_arm_neoverse_with_bf16_stays_fp32():
    cpu = sample("neoverse_v1")
    assert (cpu.arch, cpu.model, cpu.cores, cpu.vector) == ("aarch64", "Neoverse-V1", 2, "SVE")
    assert cpu.key_features == ["neon", "sve", "bf16", "i8mm"] and cpu.missing_features == ["sve2"]
    paths = choose(cpu)
    assert (paths.precision, paths.serve_dtype) == ("fp32", "fp32")
    assert "precision=bf16 to try" in paths.why and paths.matmuls == "fp32 matmuls on SVE"


def test_amx_hyperthreads_and_processes():
    text = "".join(f"processor\t: {p}\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nphysical id\t: 0\n"
                   f"core id\t\t: {p // 2}\nflags\t\t: avx2 fma avx512f avx512_bf16 amx_tile amx_bf16\n\n"
                   for p in range(8))
    cpu = parse_cpuinfo(text)
    assert (cpu.logical, cpu.cores, cpu.vector) == (8, 4, "AMX")  # two hyper-threads per core fold into one
    paths = choose(cpu, processes=2)
    assert (paths.precision, paths.threads) == ("bf16", 2) and "AMX" in paths.matmuls
    assert choose(cpu, cores=1, processes=4).threads == 1


def test_gpu_decides_before_the_cpu():
    cpu = sample("epyc_avx2")
    assert choose(cpu, GPU("NVIDIA H200", 139.8, bf16=True)).precision == "bf16"
    old = choose(cpu, GPU("Tesla V100", 32.0, bf16=False))
    assert (old.device, old.precision, old.serve_dtype) == ("cuda", "fp16", "fp16")


def test_unreadable_cpuinfo_takes_the_safe_path():
    cpu = parse_cpuinfo("", machine="x86_64")
    assert cpu.features == frozenset() and cpu.cores >= 1
    assert choose(cpu).precision == "fp32"


def test_autocast_dtype_follows_the_chosen_path(monkeypatch):
    cpu_device = torch.device("cpu")
    assert hardware.autocast_dtype(cpu_device, "fp32") is None
    assert hardware.autocast_dtype(cpu_device, "bf16") is torch.bfloat16
    monkeypatch.setattr(hardware, "gpu", lambda: None)
    monkeypatch.setattr(hardware, "cpu", lambda: sample("epyc_avx2"))
    assert hardware.autocast_dtype(cpu_device) is None
    assert "AMD EPYC 7B12" in hardware.describe() and "· fp32 ·" in hardware.describe()
    monkeypatch.setattr(hardware, "cpu", lambda: sample("epyc_avx512_bf16"))
    assert hardware.autocast_dtype(cpu_device) is torch.bfloat16


def test_bf16_note():
    emulated, native = choose(sample("epyc_avx2")), choose(sample("epyc_avx512_bf16"))
    assert bf16_note(emulated, {"bf16_vs_fp32": 0.04}) == (
        "bf16 is emulated here (25× slower than fp32): training and serving use fp32")
    assert bf16_note(emulated, {"bf16_vs_fp32": 0.4}).startswith("bf16 is emulated here (2.5× slower")
    assert bf16_note(native, {"bf16_vs_fp32": 2.2}) is None
    assert "measured 2.0× slower" in bf16_note(native, {"bf16_vs_fp32": 0.5})
    assert "not chosen" in bf16_note(choose(sample("neoverse_v1")), {"bf16_vs_fp32": 1.8})
    assert bf16_note(emulated, None) is None


def doctor(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([SELFTUNE, "doctor", *args], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ))
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


def test_doctor_json_measures_this_machine():
    result = doctor("--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    here = hardware.cpu()
    assert found["cpu"]["model"] == here.model and found["cpu"]["features"] == here.key_features
    assert found["paths"]["precision"] == hardware.paths().precision
    assert found["torch"]["kernels"] == torch.backends.cpu.get_cpu_capability()
    peaks = found["matmul"]
    assert peaks["fp32_gflops"] > 0 and peaks["bf16_gflops"] > 0 and peaks["threads"] >= 1
    if not found["paths"]["bf16_native"] and peaks["bf16_vs_fp32"] < 1:
        assert found["note"].startswith("bf16 is emulated here")


def test_doctor_describes_another_machine_from_its_cpuinfo():
    result = doctor("--cpuinfo", str(SAMPLES / "epyc_avx2.txt"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "found",
        "  CPU        AMD EPYC 7B12 (x86_64, AVX2+FMA), 2 cores, 2 logical, 2 usable",
        "  features   avx2 fma · absent: avx512f avx512_bf16 avx512_vnni amx_tile amx_bf16",
        "  (from --cpuinfo: this machine's torch, GPU and speed are not looked at)",
        "will use",
        "  training   fp32 on cpu — no AVX512-BF16 or AMX (AVX2+FMA only): bf16 would be emulated",
        "  serving    fp32 (serve_dtype=auto)",
        "  weights    full (serve_weights=full); int8 would read a quarter of the bytes per decode step, answers can "
        "differ (docs/api.md)",
        "  threads    2 per process (one per physical core)",
        "  matmuls    fp32 matmuls on AVX2+FMA",
    ]


def test_doctor_bad_cpuinfo_is_one_line():
    result = doctor("--cpuinfo", "/nonexistent/cpuinfo")
    assert result.returncode == 2
    assert result.stderr == "error: --cpuinfo: cannot read /nonexistent/cpuinfo: No such file or directory\n"
