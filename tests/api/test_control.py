"""Cancel, pause and resume of a running job; a job whose data can't be trained fails naming the line."""

from __future__ import annotations

import time

LONG = {"n_epochs": 20, "batch_size": 1}  # ~2,400 tiny steps: long enough to act on while it runs


def test_cancel_stops_the_child_within_seconds(client, tmp_path, chat_rows, upload, wait_until_step, all_events):
    training = upload(client, tmp_path / "train.jsonl", chat_rows(120))
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id, hyperparameters=LONG)
    wait_until_step(client, job.id, 3)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    time.sleep(2)
    before = client.fine_tuning.jobs.list_events(job.id, limit=1).data[0].id
    time.sleep(1.5)
    assert client.fine_tuning.jobs.list_events(job.id, limit=1).data[0].id == before  # nothing runs any more
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "cancelled" and job.fine_tuned_model is None
    assert "Fine-tuning job cancelled" in [e.message for e in all_events(client, job.id)]


def test_pause_then_resume_continues_from_the_checkpoint(client, tmp_path, chat_rows, upload, wait_for,
                                                        wait_until_step, all_events):
    # 120 tiny steps: the pause (an in-process call, a few steps later) lands mid-run on a fast machine too
    training = upload(client, tmp_path / "train.jsonl", chat_rows(40))
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id,
                                         hyperparameters={"n_epochs": 3, "batch_size": 1})
    wait_until_step(client, job.id, 5)
    client.fine_tuning.jobs.pause(job.id)
    paused = wait_for(client, job.id, statuses=("paused",), timeout=60)
    assert paused.status == "paused"
    paused_at = max(e.data["step"] for e in all_events(client, job.id) if e.type == "metrics")
    checkpoints = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
    assert paused_at in checkpoints  # it stopped at a checkpoint of its own

    client.files.delete(training.id)  # the job has its own copy: resuming does not need the upload
    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    events = all_events(client, job.id)
    messages = [e.message for e in events]
    assert f"Resumed training from the checkpoint at step {paused_at}" in messages
    steps = [e.data["step"] for e in events if e.type == "metrics" and "train_loss" in e.data]
    assert steps == list(range(1, steps[-1] + 1))  # no step lost, none reported twice


def test_untrainable_data_fails_the_job_naming_the_line(client, tmp_path, chat_rows, upload, wait_for, all_events):
    rows = chat_rows(12)
    # valid JSONL (the upload check has no model), but the answer starts past the tiny model's 256-token context
    rows[4]["messages"][1]["content"] = "word " * 400
    training = upload(client, tmp_path / "long.jsonl", rows)
    assert training.status == "processed"
    job = wait_for(client, client.fine_tuning.jobs.create(model="tiny", training_file=training.id).id)
    assert job.status == "failed"
    assert job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert training.id in job.error.message and "(lines 5)" in job.error.message, job.error.message
    assert all_events(client, job.id)[-1].level == "error"


def test_the_demo_cancels_the_job_an_interrupted_demo_left_in_the_queue(client, tmp_path, chat_rows, upload):
    from selftune.demo import DEMO_JOB, _cancel_leftovers

    training = upload(client, tmp_path / "train.jsonl", chat_rows(60))
    leftover = client.fine_tuning.jobs.create(model="tiny", training_file=training.id, metadata=DEMO_JOB,
                                              hyperparameters=LONG)
    other = client.fine_tuning.jobs.create(model="tiny", training_file=training.id, metadata={"made_by": "me"},
                                           hyperparameters=LONG)
    _cancel_leftovers(client)
    assert client.fine_tuning.jobs.retrieve(leftover.id).status == "cancelled"
    assert client.fine_tuning.jobs.retrieve(other.id).status != "cancelled"  # not the demo's: left alone
    client.fine_tuning.jobs.cancel(other.id)
