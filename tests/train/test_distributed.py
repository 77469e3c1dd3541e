"""The training entry point under `accelerate launch` with 2 CPU processes (gloo), unchanged."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selftune.train import run
from tests.train.helpers import config

ACCELERATE = str(Path(sys.executable).parent / "accelerate")


@pytest.mark.slow
def test_two_processes_agree_with_one(tmp_path, tiny_model):
    """Each process trains on half of every step and the gradients are summed: both processes keep the
    same weights (checked at every checkpoint, or the run fails) and the result equals a one-process run."""
    single = config(tmp_path, tiny_model, out="single", n_train=16, precision="fp32")
    run(single)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # accelerate's --cpu flag means "one process"; its multi-process launcher (torch.distributed.run) is
    # --multi_gpu, which on a machine without GPUs starts CPU processes that join over gloo
    command = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
               "no", "--dynamo_backend", "no", "-m", "selftune.cli", "train", "--model", str(tiny_model),
               "--train", str(single.train_file), "--valid", str(single.valid_file), "--epochs", "2",
               "--batch-size", "4", "--seed", "0", "--precision", "fp32", "--out", str(tmp_path / "ddp"), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world size 2" in result.stderr  # really two processes
    assert result.stdout.count("succeeded:") == 1  # only the first process reports
    one = load_file(tmp_path / "single" / "adapter_model.safetensors")
    two = load_file(tmp_path / "ddp" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    for name in one:  # the same sums in another order: equal up to float rounding (which Adam amplifies)
        assert torch.allclose(one[name], two[name], atol=1e-4, rtol=1e-3), name
    with open(tmp_path / "single" / "results.csv") as a, open(tmp_path / "ddp" / "results.csv") as b:
        losses_one = [float(r["train_loss"]) for r in csv.DictReader(a)]
        losses_two = [float(r["train_loss"]) for r in csv.DictReader(b)]
    assert losses_two == pytest.approx(losses_one, rel=1e-4)
