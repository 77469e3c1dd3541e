"""Every bad request is refused at once with the hosted status code and a ``param`` naming the field."""

from __future__ import annotations

import openai
import pytest


@pytest.fixture
def files(client, tmp_path, upload, chat_rows, preference_rows):
    chat = upload(client, tmp_path / "chat.jsonl", chat_rows(12))
    pairs = upload(client, tmp_path / "pairs.jsonl", preference_rows(12))
    rows = chat_rows(12)
    rows[2] = {"messages": [{"role": "user", "content": "hi"}]}  # no assistant answer
    rows[6] = "{not json"
    broken = upload(client, tmp_path / "broken.jsonl", rows)
    batch = client.files.create(file=("b.jsonl", b'{"custom_id": "1"}\n'), purpose="batch")
    return {"chat": chat.id, "pairs": pairs.id, "broken": broken, "batch": batch.id}


def refused(call, status=400):
    error = {400: openai.BadRequestError, 404: openai.NotFoundError, 413: openai.APIStatusError}[status]
    with pytest.raises(error) as info:
        call()
    assert info.value.status_code == status
    return info.value


def test_invalid_file_is_marked_with_its_lines(files):
    broken = files["broken"]
    assert broken.status == "error"
    assert "Line 3: messages: " in broken.status_details
    assert "Line 7: " in broken.status_details


def test_job_requests_refused_with_param(client, files):
    create = client.fine_tuning.jobs.create
    cases = [
        (dict(model="no-such-model", training_file=files["chat"]), "model"),
        (dict(model="tiny", training_file="file-missing"), "training_file"),
        (dict(model="tiny", training_file=files["chat"], validation_file="file-missing"), "validation_file"),
        (dict(model="tiny", training_file=files["batch"]), "training_file"),
        (dict(model="tiny", training_file=files["broken"].id), "training_file"),
        (dict(model="tiny", training_file=files["pairs"]), "training_file"),  # preference file, supervised job
        (dict(model="tiny", training_file=files["chat"], method={"type": "dpo"}), "training_file"),
        (dict(model="tiny", training_file=files["chat"], hyperparameters={"n_epochs": 0}), "hyperparameters.n_epochs"),
        (dict(model="tiny", training_file=files["chat"], hyperparameters={"n_epochs": 51}), "hyperparameters.n_epochs"),
        (dict(model="tiny", training_file=files["chat"], hyperparameters={"batch_size": 1000}), "hyperparameters.batch_size"),
        (dict(model="tiny", training_file=files["chat"], hyperparameters={"learning_rate_multiplier": -1}),
         "hyperparameters.learning_rate_multiplier"),
        (dict(model="tiny", training_file=files["pairs"],
              method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 5}}}), "method.dpo.hyperparameters.beta"),
        (dict(model="tiny", training_file=files["chat"],
              method={"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}}),
         "method.supervised.hyperparameters.beta"),
        (dict(model="tiny", training_file=files["chat"],
              method={"type": "supervised", "supervised": {"hyperparameters": {"time_budget": "10m"}}}),
         "method.supervised.hyperparameters.time_budget"),
        (dict(model="tiny", training_file=files["chat"], method={"type": "reinforcement"}), "method.type"),
        (dict(model="tiny", training_file=files["chat"], suffix="has:colon"), "suffix"),
        (dict(model="tiny", training_file=files["chat"], metadata={"k": "v" * 513}), "metadata.k"),
    ]
    for kwargs, param in cases:
        error = refused(lambda kwargs=kwargs: create(**kwargs))
        assert error.param == param, (kwargs, error.message)
        assert error.body["message"], kwargs
    error = refused(lambda: create(model="tiny", training_file=files["broken"].id))
    assert "Line 3" in error.message
    # a value no member of the field's union accepts: one message naming what each member wants
    error = refused(lambda: create(model="tiny", training_file=files["chat"], hyperparameters={"n_epochs": "two"}))
    assert error.body["message"] == ("hyperparameters.n_epochs: Input should be 'auto', a valid integer or a valid number")


def test_missing_objects_are_404(client, files):
    jobs = client.fine_tuning.jobs
    for call in (lambda: jobs.retrieve("ftjob-nope"), lambda: jobs.cancel("ftjob-nope"),
                 lambda: jobs.pause("ftjob-nope"), lambda: jobs.resume("ftjob-nope"),
                 lambda: jobs.list_events("ftjob-nope"), lambda: jobs.checkpoints.list("ftjob-nope"),
                 lambda: client.files.retrieve("file-nope"), lambda: client.files.delete("file-nope"),
                 lambda: client.files.content("file-nope"), lambda: client.models.retrieve("nope"),
                 lambda: client.models.retrieve("ft:tiny:local::nope"),
                 lambda: client.models.delete("ft:tiny:local::nope"),
                 lambda: jobs.create(model="ft:tiny:local::nope", training_file=files["chat"]),  # no such model to continue
                 lambda: client.files.list(after="file-nope")):
        error = refused(call, 404)
        assert error.body["message"].startswith("No such")


def test_upload_refusals(client):
    error = refused(lambda: client.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune-results"))
    assert error.param == "purpose"
    error = refused(lambda: client.files.create(file=("x.jsonl", b""), purpose="fine-tune"))
    assert error.param == "file"
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("tiny")  # base models can't be deleted


def test_upload_over_the_limit_is_413(tmp_path, serve_in_process, selftune_home, write_jsonl, chat_rows):
    with serve_in_process(SELFTUNE_MAX_UPLOAD_BYTES="2000") as connect:
        client = connect()
        write_jsonl(tmp_path / "big.jsonl", chat_rows(40))
        with pytest.raises(openai.APIStatusError) as info, open(tmp_path / "big.jsonl", "rb") as big:
            client.files.create(file=big, purpose="fine-tune")
        assert info.value.status_code == 413 and info.value.body["code"] == "file_too_large"
        assert list(client.files.list()) == []
        assert not any(p.is_file() for p in (selftune_home / "files").rglob("*"))  # nothing kept, not even a temp file
        small = client.files.create(file=("small.jsonl", b'{"messages": []}\n'), purpose="fine-tune")
        assert small.bytes == 17


def test_cancel_of_a_finished_job_is_refused(client, files):
    job = client.fine_tuning.jobs.create(model="tiny", training_file=files["chat"])
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    error = refused(lambda: client.fine_tuning.jobs.cancel(job.id))
    assert error.param == "fine_tuning_job_id"
    refused(lambda: client.fine_tuning.jobs.resume(job.id))


def test_the_web_layer_starts_without_torch():
    import subprocess
    import sys

    code = "import sys, selftune.api.app, selftune.jobs.worker; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
