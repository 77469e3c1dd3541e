"""Sharing the CPU (selftune.threads): the threads rule on given inputs, the registry of selftune compute
processes, the wait policy training children get, and `selftune doctor --json` showing the decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from selftune import hardware, threads
from selftune.errors import SelftuneError
from selftune.threads import ComputeShare, decide, working_processes


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """An empty registry of its own, a quiet 4-core machine as the input, and torch's threads put back."""
    folder = tmp_path / "compute"
    monkeypatch.setenv(threads.RUNTIME_ENV, str(folder))
    monkeypatch.setattr(hardware, "physical_cores", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    before = torch.get_num_threads()
    yield folder
    torch.set_num_threads(before)


# ---- the rule, on given inputs -------------------------------------------------------------------------
def test_alone_on_a_quiet_machine_every_core():
    made = decide(8)
    assert (made.threads, made.why) == (8, "8 usable core(s)")


def test_reserved_cores_are_left_out_but_one_is_always_used():
    assert decide(8, reserved=2).threads == 6
    assert "2 reserved" in decide(8, reserved=2).why
    assert decide(2, reserved=2).threads == 1
    assert decide(2, reserved=5).threads == 1


def test_processes_computing_at_once_split_the_cores():
    assert decide(2, sharers=2).threads == 1  # a job training while the engine answers, or two trainings
    assert decide(8, sharers=3).threads == 2
    assert decide(8, reserved=2, sharers=2).threads == 3
    assert decide(2, sharers=5).threads == 1  # never 0
    assert "shared by 3 selftune processes" in decide(8, sharers=3).why


def test_other_programs_load_takes_whole_cores_but_never_the_last():
    assert decide(8, load=3.5).threads == 5
    assert decide(8, load=6.0, own_load=4).threads == 6  # selftune's own threads are not "other programs"
    assert decide(8, load=0.9).threads == 8  # less than a core busy: nothing taken off
    assert decide(2, load=10.0).threads == 1
    made = decide(8, load=3.5, sharers=2)
    assert (made.outside, made.threads) == (3, 2) and "3 busy with other programs (load 3.5)" in made.why


# ---- the registry ----------------------------------------------------------------------------------------
def test_a_working_process_is_counted_an_idle_one_is_not(registry):
    trainer = ComputeShare("train")
    engine = ComputeShare("engine", active=False)
    assert trainer.apply() == 4
    assert engine.apply() == 2  # what it would take if it computed beside the training now
    assert trainer.apply() == 4 and torch.get_num_threads() == 4  # the idle engine leaves the training every core
    engine.set_active(True)  # requests arrive: the engine's threads are set at once, the trainer's at its next check
    assert engine.threads == 2 and torch.get_num_threads() == 2
    assert trainer.decision().sharers == 2 and trainer.apply() == 2
    assert [(e["kind"], e["threads"]) for e in working_processes(registry, exclude=trainer.name)] == [("engine", 2)]
    engine.set_active(False)
    assert trainer.apply() == 4
    trainer.close()
    engine.close()
    assert list(registry.iterdir()) == []


def test_a_dead_or_stale_process_is_not_counted(registry):
    registry.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    (registry / f"{dead}-train.json").write_text(json.dumps({"pid": dead, "kind": "train", "threads": 2,
                                                             "active": True}))
    stale = registry / "1-train.json"  # pid 1 is alive, but this entry has not been refreshed for hours
    stale.write_text(json.dumps({"pid": 1, "kind": "train", "threads": 2, "active": True}))
    os.utime(stale, (time.time() - 3 * 3600,) * 2)
    (registry / "junk.json").write_text("{not json")
    assert working_processes(registry) == []
    assert not (registry / f"{dead}-train.json").exists()  # a dead process's entry is cleaned up
    assert ComputeShare("train").apply() == 4


def test_reserved_cores_setting(registry, monkeypatch):
    monkeypatch.setenv(threads.RESERVED_ENV, "1")
    made = ComputeShare("train").decision()
    assert (made.threads, made.reserved) == (3, 1)
    monkeypatch.setenv(threads.RESERVED_ENV, "some")
    with pytest.raises(SelftuneError, match="SELFTUNE_RESERVED_CORES"):
        ComputeShare("train").decision()


def test_policy_off_is_the_old_behaviour(registry, monkeypatch):
    monkeypatch.setenv(threads.POLICY_ENV, "off")
    ComputeShare("engine").apply()
    assert ComputeShare("train").apply() == 4  # one thread per core, whatever else computes
    assert not registry.exists()


def test_threads_are_set_for_the_thread_that_computes(registry):
    """OpenMP's thread count is per thread: the engine's scheduler sets its own."""
    torch.set_num_threads(4)
    ComputeShare("train").apply()
    seen = []

    def scheduler():
        torch.ones(4) @ torch.ones(4)
        engine = ComputeShare("engine")
        engine.apply()
        seen.append(torch.get_num_threads())
        engine.close()

    worker = threading.Thread(target=scheduler)
    worker.start()
    worker.join()
    assert seen == [2]


# ---- training children and the doctor ---------------------------------------------------------------------
def test_doctor_json_shows_the_decision(tmp_path):
    env = {**os.environ, threads.RESERVED_ENV: "1", threads.RUNTIME_ENV: str(tmp_path / "compute")}
    result = subprocess.run([sys.executable, "-m", "selftune.cli", "doctor", "--json"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    sharing = json.loads(result.stdout)["sharing"]
    assert sharing["reserved"] == 1 and sharing["others"] == [] and sharing["policy"] == "share"
    assert sharing["threads"] >= 1 and sharing["usable"] == hardware.physical_cores()
    assert sharing["registry"] == str(tmp_path / "compute")
