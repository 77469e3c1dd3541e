"""Crash safety: ``kill -9`` of the server mid-job, Ctrl-C, a restart; and ``serve`` refusing a public
address in local mode. The process boundary is the point of each, so each runs a real server."""

from __future__ import annotations

import pytest

from selftune.evals.local_server import free_port


@pytest.mark.slow  # ~16 s; Ctrl-C's resume (below) stays in the default suite, CI runs both
def test_kill_9_mid_training_then_restart_finishes_the_job(tmp_path, new_server, chat_rows, upload, wait_for,
                                                           wait_until_step, all_events):
    server = new_server().start()
    client = server.client()
    # enough steps that the kill lands mid-run on a fast machine too (a tiny step takes milliseconds)
    training = upload(client, tmp_path / "train.jsonl", chat_rows(60))
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id,
                                         hyperparameters={"n_epochs": 3, "batch_size": 1})
    wait_until_step(client, job.id, 70)  # past the first epoch's checkpoint, into the second epoch
    server.kill()

    server.port = free_port()  # a fresh port: the old one may linger in TIME_WAIT
    server.start()
    client = server.client()
    job = wait_for(client, job.id)
    events = all_events(client, job.id)
    server.stop()
    assert job.status == "succeeded", job.error
    messages = [e.message for e in events]
    assert any(m.startswith("Resumed training from the checkpoint at step") for m in messages)
    assert messages.count("Fine-tuning job started: 60 examples, 180 steps") == 1
    steps = [e.data["step"] for e in events if e.type == "metrics" and "train_loss" in e.data]
    assert steps == list(range(1, 181))  # nothing reported is lost or duplicated
    assert messages.count(f"New fine-tuned model created: {job.fine_tuned_model}") == 1
    checkpoint_events = [m for m in messages if m.startswith("Checkpoint created at step")]
    # one per epoch, plus the one the orphaned child saved when it saw its server die; none twice
    assert len(checkpoint_events) == len(set(checkpoint_events)) >= 3


def test_local_mode_refuses_a_public_address(tmp_path, service_env):
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "selftune.cli", "serve", "--host", "0.0.0.0", "--home",
                             str(tmp_path)], env={**os.environ, **service_env}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in result.stderr


def test_graceful_stop_requeues_the_job_and_a_restart_resumes_it(tmp_path, new_server, chat_rows, upload, wait_for,
                                                                  wait_until_step, all_events):
    server = new_server()
    client = server.start().client()
    # 200 steps: the stop (about a second of steps later) must land mid-run even on a fast machine;
    # with 60 steps a CI machine once finished the job before the stop arrived
    training = upload(client, tmp_path / "train.jsonl", chat_rows(100))
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id,
                                         hyperparameters={"n_epochs": 2, "batch_size": 1})
    wait_until_step(client, job.id, 10)
    server.stop()  # Ctrl-C: the worker stops its child at a checkpoint and puts the job back in the queue
    assert server.process.returncode == 0

    client = server.start().client()
    job = wait_for(client, job.id)
    events = all_events(client, job.id)
    server.stop()
    assert job.status == "succeeded", job.error
    messages = [e.message for e in events]
    resumed = [m for m in messages if m.startswith("Resumed training from the checkpoint at step")]
    assert len(resumed) == 1 and int(resumed[0].rsplit(" ", 1)[1]) >= 10  # not from the start, nor an epoch end
    steps = [e.data["step"] for e in events if e.type == "metrics" and "train_loss" in e.data]
    assert steps == list(range(1, 201))
