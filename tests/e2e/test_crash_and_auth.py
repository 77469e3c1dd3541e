"""Crash safety (``kill -9`` of the server mid-job, then a restart) and isolation between API keys."""

from __future__ import annotations

import openai
import pytest

from tests.e2e.conftest import Server, all_events, chat_rows, upload, wait_for
from tests.e2e.test_control import wait_until_step


def test_kill_9_mid_training_then_restart_finishes_the_job(tmp_path, server_env):
    server = Server(tmp_path / "home", server_env)
    server.home.mkdir()
    server.start()
    client = server.client()
    training = upload(client, tmp_path / "train.jsonl", chat_rows(30))
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id,
                                         hyperparameters={"n_epochs": 6, "batch_size": 1})
    wait_until_step(client, job.id, 40)  # past the first epoch's checkpoint, into the second epoch
    server.kill()

    server.port = Server(server.home, server_env).port  # a fresh port: the old one may linger in TIME_WAIT
    server.start()
    client = server.client()
    job = wait_for(client, job.id)
    events = all_events(client, job.id)
    server.stop()
    assert job.status == "succeeded", job.error
    messages = [e.message for e in events]
    assert any(m.startswith("Resumed training from the checkpoint at step") for m in messages)
    assert messages.count("Fine-tuning job started: 30 examples, 180 steps") == 1
    steps = [e.data["step"] for e in events if e.type == "metrics" and "train_loss" in e.data]
    assert steps == list(range(1, 181))  # nothing reported is lost or duplicated
    assert messages.count(f"New fine-tuned model created: {job.fine_tuned_model}") == 1
    checkpoint_events = [m for m in messages if m.startswith("Checkpoint created at step")]
    # one per epoch, plus the one the orphaned child saved when it saw its server die; none twice
    assert len(checkpoint_events) == len(set(checkpoint_events)) >= 6


def test_two_keys_do_not_see_each_other(keyed_server, tmp_path):
    alice, bob = keyed_server.client("key-a"), keyed_server.client("key-b")
    training = upload(alice, tmp_path / "a.jsonl", chat_rows(12))
    job = alice.fine_tuning.jobs.create(model="tiny", training_file=training.id, suffix="mine")
    assert job.organization_id == "org-a"

    assert list(bob.files.list()) == [] and list(bob.fine_tuning.jobs.list()) == []
    for call in (lambda: bob.files.retrieve(training.id), lambda: bob.files.content(training.id),
                 lambda: bob.files.delete(training.id), lambda: bob.fine_tuning.jobs.retrieve(job.id),
                 lambda: bob.fine_tuning.jobs.cancel(job.id), lambda: bob.fine_tuning.jobs.list_events(job.id),
                 lambda: bob.fine_tuning.jobs.checkpoints.list(job.id)):
        with pytest.raises(openai.NotFoundError):  # as if it did not exist, not 403
            call()
    with pytest.raises(openai.BadRequestError) as info:  # nor can bob train on alice's file
        bob.fine_tuning.jobs.create(model="tiny", training_file=training.id)
    assert info.value.param == "training_file"

    job = wait_for(alice, job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith("ft:tiny:org-a:mine:")
    assert job.fine_tuned_model in [m.id for m in alice.models.list()]
    assert job.fine_tuned_model not in [m.id for m in bob.models.list()]
    for call in (lambda: bob.models.retrieve(job.fine_tuned_model), lambda: bob.models.delete(job.fine_tuned_model)):
        with pytest.raises(openai.NotFoundError):
            call()
    alice.files.retrieve(training.id)  # still there: bob's delete did nothing

    with pytest.raises(openai.AuthenticationError):
        keyed_server.client("wrong-key").files.list()


def test_local_mode_refuses_a_public_address(tmp_path, server_env):
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "selftune.cli", "serve", "--host", "0.0.0.0", "--home",
                             str(tmp_path)], env={**os.environ, **server_env}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in result.stderr


def test_graceful_stop_requeues_the_job_and_a_restart_resumes_it(tmp_path, server_env):
    server = Server(tmp_path / "home", server_env)
    server.home.mkdir()
    client = server.start().client()
    training = upload(client, tmp_path / "train.jsonl", chat_rows(30))
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id,
                                         hyperparameters={"n_epochs": 4, "batch_size": 1})
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
    assert steps == list(range(1, 121))
