"""The hosted cookbook flow, unchanged but for base_url: upload, wait, create, poll, events, results, model."""

from __future__ import annotations

import csv
import io

import openai
import pytest


def test_cookbook_flow(client, tmp_path, chat_rows, upload, wait_for, all_events):
    training = upload(client, tmp_path / "train.jsonl", chat_rows(24))
    validation = upload(client, tmp_path / "valid.jsonl", chat_rows(10, seed=1))
    assert (training.status, training.purpose, training.filename) == ("processed", "fine-tune", "train.jsonl")

    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=training.id, validation_file=validation.id, suffix="intents",
        seed=7, metadata={"team": "support"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 8,
                                                                      "time_budget": 600}}})
    assert job.status == "validating_files"
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.learning_rate_multiplier == "auto"
    assert job.organization_id == "local" and job.seed == 7 and job.metadata == {"team": "support"}

    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:tiny:local:intents:{job.id.removeprefix('ftjob-')}"
    assert job.hyperparameters.learning_rate_multiplier == 1.0  # "auto" resolved once training started
    assert job.trained_tokens > 0 and job.finished_at >= job.created_at and job.estimated_finish is None
    assert job.method.type == "supervised" and job.method.supervised.hyperparameters.batch_size == 8
    assert job.method.supervised.hyperparameters.time_budget == 600  # selftune's extension reached the trainer

    events = all_events(client, job.id)
    messages = [e.message for e in events]
    assert messages[0] == f"Created fine-tuning job: {job.id}"
    assert "Files validated, moving job to queued state" in messages
    assert any(m.startswith("Fine-tuning job started") for m in messages)
    assert messages[-2:] == [f"New fine-tuned model created: {job.fine_tuned_model}", "The job has successfully completed"]
    steps = [e.data["step"] for e in events if e.type == "metrics" and "train_loss" in e.data]
    last = steps[-1]
    assert steps == list(range(1, last + 1))  # every step once (SELFTUNE_METRICS_EVERY=1), none twice
    valid = [e.data["step"] for e in events if e.type == "metrics" and "valid_loss" in e.data]
    assert len(valid) == 2 and valid[-1] == last  # one evaluation per epoch

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert [c.step_number for c in checkpoints] == valid[::-1]  # newest first, one per epoch
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-{last}"
    assert checkpoints[0].metrics.valid_loss is not None and checkpoints[0].metrics.train_loss is not None
    assert client.models.retrieve(checkpoints[1].fine_tuned_model_checkpoint).owned_by == "local"

    (results_id,) = job.result_files
    result_file = client.files.retrieve(results_id)
    assert result_file.purpose == "fine-tune-results"
    rows = list(csv.DictReader(io.StringIO(client.files.content(results_id).text)))
    assert [int(r["step"]) for r in rows] == steps
    assert rows[-1]["valid_loss"] != "" and float(rows[0]["train_loss"]) > 0

    model_ids = [m.id for m in client.models.list()]
    assert "tiny" in model_ids and job.fine_tuned_model in model_ids
    assert client.models.retrieve(job.fine_tuned_model).owned_by == "local"
    deleted = client.models.delete(job.fine_tuned_model)
    assert deleted.deleted and deleted.id == job.fine_tuned_model
    assert job.fine_tuned_model not in [m.id for m in client.models.list()]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(job.fine_tuned_model)
    with pytest.raises(openai.NotFoundError):  # its checkpoints went with it
        client.models.retrieve(checkpoints[1].fine_tuned_model_checkpoint)
    assert list(client.fine_tuning.jobs.checkpoints.list(job.id)) == []
    assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"  # the job's record stays

    assert client.files.delete(training.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(training.id)


def test_dpo_job(client, tmp_path, preference_rows, upload, wait_for):
    pairs = upload(client, tmp_path / "pairs.jsonl", preference_rows(12))
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=pairs.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1}}})
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.2
    assert job.method.dpo.hyperparameters.batch_size == 8  # resolved


def test_pagination(client, tmp_path, chat_rows, upload):
    ids = [upload(client, tmp_path / f"f{i}.jsonl", chat_rows(10, seed=i), wait=False).id for i in range(5)]
    page = client.files.list(limit=2, purpose="fine-tune")
    assert [f.id for f in page.data] == ids[::-1][:2] and page.has_more
    assert [f.id for f in client.files.list(limit=2)] == ids[::-1]  # the SDK follows `after` on its own
    assert [f.id for f in client.files.list(order="asc", limit=3)] == ids
    assert [f.id for f in client.files.list(purpose="batch")] == []

    for file_id in ids:
        client.files.wait_for_processing(file_id, poll_interval=0.1)
    jobs = [client.fine_tuning.jobs.create(model="tiny", training_file=ids[0], metadata={"n": str(i % 2)}).id
            for i in range(3)]
    first = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == jobs[::-1][:2] and first.has_more
    second = client.fine_tuning.jobs.list(limit=2, after=first.data[-1].id)
    assert [j.id for j in second.data] == [jobs[0]] and not second.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"n": "0"})] == [jobs[2], jobs[0]]

    events = client.fine_tuning.jobs.list_events(jobs[0], limit=1)
    assert len(events.data) == 1 and events.has_more
    after = client.fine_tuning.jobs.list_events(jobs[0], limit=1, after=events.data[0].id)
    assert after.data[0].id != events.data[0].id
    for job_id in jobs:
        client.fine_tuning.jobs.cancel(job_id)
