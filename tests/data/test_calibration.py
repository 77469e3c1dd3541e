"""The quick speed measurement runs selftune's own trainer, on the trainer's precision path, cached
per machine and path, and never overrides a real run's figure."""

from __future__ import annotations

import dataclasses

import pytest

from selftune import hardware
from selftune.data import calibration
from selftune.data.calibration import (
    MEASURED_STEPS,
    cached_speed,
    machine_fingerprint,
    record_training_speed,
    training_speed,
)
from selftune.train.methods import Method
from tests.helpers import write_jsonl


def rows(n):
    return [{"messages": [{"role": "user", "content": f"message {i} " * (i % 7 + 1)},
                          {"role": "assistant", "content": f"label_{i % 3}"}]} for i in range(n)]


@pytest.fixture
def bf16_native(monkeypatch):
    """Set whether this 'CPU' has native bf16 (an AVX512-BF16 EPYC, or an AVX2-only laptop)."""
    real = hardware.cpu()

    def choose(native: bool) -> None:
        features = real.features | {"avx512f", "avx512_bf16"} if native else \
            real.features - {"avx512_bf16", "amx_bf16", "amx_tile", "bf16"}
        monkeypatch.setattr(hardware, "cpu", lambda: dataclasses.replace(real, features=frozenset(features)))
    return choose


def test_the_measurement_trains_in_fp32_where_bf16_is_not_native(tmp_path, tiny_model, bf16_native, monkeypatch):
    from selftune.train.trainer import Trainer

    seen, real_setup = [], Trainer.setup

    def setup(self):
        real_setup(self)
        seen.append((self.dtype, self.config.batch_size, self.config.lora_rank, self.config.full))

    monkeypatch.setattr(Trainer, "setup", setup)
    path = write_jsonl(tmp_path / "f.jsonl", rows(40))
    bf16_native(False)
    speed = training_speed(str(tiny_model), path, 40)
    assert seen == [(None, 8, 16, False)]  # fp32, the auto batch of 40 examples, LoRA defaults
    assert speed.machine.endswith("| fp32") and "fp32" in speed.method
    assert speed.tokens_per_second > 0
    timed = int(speed.method.split(" timed steps")[0].rsplit(" ", 1)[1])
    assert 1 <= timed <= MEASURED_STEPS  # stopped after a few steps, not the run's ~15


def test_each_precision_path_has_its_own_figure(tmp_path, tiny_model, bf16_native):
    path = write_jsonl(tmp_path / "f.jsonl", rows(20))
    bf16_native(True)
    fast = training_speed(str(tiny_model), path, 20)
    bf16_native(False)
    slow = training_speed(str(tiny_model), path, 20)
    assert fast.machine.endswith("| bf16") and slow.machine.endswith("| fp32")
    assert fast.machine != slow.machine and fast.measured_at and slow.measured_at
    assert cached_speed(str(tiny_model)) == slow
    bf16_native(True)
    assert cached_speed(str(tiny_model)) == fast  # the bf16 figure is not reused on the fp32 path


def test_a_real_run_is_preferred_to_a_measurement(tmp_path, tiny_model, bf16_native, monkeypatch):
    path = write_jsonl(tmp_path / "f.jsonl", rows(20))
    bf16_native(True)
    record_training_speed(str(tiny_model), 1234.0, "selftune train", precision="bf16")

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured although a real run's figure is stored")

    monkeypatch.setattr(calibration, "measure", no_measuring)
    assert training_speed(str(tiny_model), path, 20).tokens_per_second == 1234.0
    assert training_speed(str(tiny_model), path, 20, refresh=True).source == "run"
    bf16_native(False)  # that run's figure was on the bf16 path: an fp32 estimate can't use it
    assert cached_speed(str(tiny_model)) is None
    assert cached_speed(str(tiny_model), Method.DPO) is None  # nor a DPO estimate


def test_the_fingerprint_names_what_decides_speed():
    import torch

    fingerprint = machine_fingerprint("fp32")
    assert "cpus" in fingerprint and torch.__version__ in fingerprint and fingerprint.endswith("| fp32")


def test_the_sample_spreads_over_the_file(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(f'{{"i": {i}}}\r\n\n'.encode() for i in range(10)))
    sample = calibration._sample(path, 10, 4, tmp_path / "s.jsonl")
    assert sample.read_text().splitlines() == ['{"i": 0}', '{"i": 2}', '{"i": 5}', '{"i": 7}']
    skipping = calibration._sample(path, 10, 4, tmp_path / "k.jsonl", frozenset({1, 3}))  # lines of i=0, 1
    assert skipping.read_text().splitlines() == ['{"i": 2}', '{"i": 4}', '{"i": 6}', '{"i": 8}']
    assert len(calibration._sample(path, 10, 50, tmp_path / "all.jsonl").read_text().splitlines()) == 10
