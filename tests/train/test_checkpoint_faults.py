"""A damaged checkpoint (a disk error, a copy cut short): a resume skips it, continues from the previous
good one and says so; a checkpoint write that fails leaves no half folder behind."""

from __future__ import annotations

import shutil

import pytest
from safetensors.torch import load_file

from selftune.train import run
from selftune.train.checkpoint import list_checkpoints, problem, step_of
from selftune.train.events import read_events
from tests.train.helpers import config


def test_a_truncated_checkpoint_is_skipped_and_the_run_resumes_from_the_previous_one(tmp_path, tiny_model):
    cfg = config(tmp_path, tiny_model, events_file=tmp_path / "events.jsonl")
    assert run(cfg).status == "succeeded"
    first, last = list_checkpoints(cfg.out)
    assert problem(first) is None and problem(last) is None
    finished = load_file(cfg.out / "adapter_model.safetensors")

    weights = last / "adapter_model.safetensors"
    with open(weights, "r+b") as f:  # cut short, as by a full disk or a crash without the atomic rename
        f.truncate(weights.stat().st_size // 2)
    assert problem(last).startswith("adapter_model.safetensors: cut short")

    resumed = run(cfg.model_copy(update={"resume": True}))
    assert resumed.status == "succeeded"
    events = list(read_events(cfg.events_file))
    warnings = [e.message for e in events if e.type == "warning"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"Checkpoint at step {step_of(last)} is unreadable (adapter_model.safetensors: "
                                  "cut short (")
    assert warnings[0].endswith(f"; resumed from step {step_of(first)}")
    assert [e.resumed_at_step for e in events if e.type == "start"] == [None, step_of(first)]
    assert [problem(c) for c in list_checkpoints(cfg.out)] == [None, None]  # the damaged one was saved afresh
    again = load_file(cfg.out / "adapter_model.safetensors")
    assert all(again[name].equal(finished[name]) for name in finished)  # the same run, step for step


@pytest.mark.parametrize("damage, reason", [
    (lambda c: (c / "trainer_state.json").write_text("{\"run\": "), "trainer_state.json: "),
    (lambda c: (c / "adapter_model.safetensors").unlink(), "the weights file is missing"),
    (lambda c: (c / "adapter_model.safetensors").write_bytes(b"\x00" * 3), "adapter_model.safetensors: cut short"),
    (lambda c: (c / "optimizer.pt").write_bytes((c / "optimizer.pt").read_bytes()[:-100]), "optimizer.pt: "),
    (lambda c: (c / "rng.pt").unlink(), "rng.pt: "),
])
def test_what_makes_a_checkpoint_unreadable(tmp_path, tiny_model, damage, reason):
    cfg = config(tmp_path, tiny_model, n_epochs=1)
    run(cfg)
    checkpoint = list_checkpoints(cfg.out)[-1]
    damaged = shutil.copytree(checkpoint, tmp_path / "checkpoints" / checkpoint.name)
    damage(damaged)
    assert problem(damaged).startswith(reason)
