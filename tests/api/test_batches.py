"""/v1/batches through the openai SDK, in process: a batch of chat and of Responses requests runs to
``completed`` with its output and error files in the hosted line format; malformed lines land in the
error file with their line; refusals by name; cancel; organisations.

The ``kill -9`` halfway through a batch of 200 is in e2e/test_batches.py."""

from __future__ import annotations

import io
import json
import time
from contextlib import contextmanager

import openai
import pytest
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

SHORT = {"max_tokens": 6, "temperature": 0}
ENDED = ("completed", "failed", "expired", "cancelled")


def _chat_line(custom_id: str, question: str, **body) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "tiny", "messages": [{"role": "user", "content": question}], **SHORT, **body}}


def _upload(client, lines: list) -> str:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    return client.files.create(file=("requests.jsonl", io.BytesIO(text.encode())), purpose="batch").id


def _wait(client, batch_id: str, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ENDED:
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch still {batch.status} after {timeout}s")


@contextmanager
def _session():
    """A transaction on the served app's database, for what no API shows or changes (a clock, a row count)."""
    from selftune.config import get_settings
    from selftune.store.db import Database

    db = Database(get_settings().database)
    try:
        with db.transaction() as session:
            yield session
    finally:
        db.dispose()


def _lines(client, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def test_a_chat_batch_completes_with_its_output_and_error_files(client):
    questions = [f"Where is my card number {i}?" for i in range(6)]
    lines = [_chat_line(f"q{i}", q) for i, q in enumerate(questions)]
    lines.insert(2, "{not json")  # line 3
    lines.insert(5, {**_chat_line("wrong-url", "hello"), "url": "/v1/responses"})  # line 6
    lines.append(_chat_line("no-such-model", "hello", model="nope"))  # runs, and fails with a 404
    lines.append(_chat_line("streamed", "hello", stream=True))  # refused: a batch answer is written whole
    input_id = _upload(client, lines)
    batch = client.batches.create(input_file_id=input_id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"run": "a"})
    assert batch.status == "validating" and batch.id.startswith("batch_") and batch.metadata == {"run": "a"}
    assert batch.expires_at == batch.created_at + 24 * 3600 and batch.input_file_id == input_id

    batch = _wait(client, batch.id)
    assert batch.status == "completed", batch
    assert batch.request_counts.model_dump() == {"total": 10, "completed": 6, "failed": 4}
    assert batch.created_at <= batch.in_progress_at <= batch.finalizing_at <= batch.completed_at
    assert batch.errors is None and batch.model is None  # "nope" is named too
    output = _lines(client, batch.output_file_id)
    assert [o["custom_id"] for o in output] == [f"q{i}" for i in range(6)]
    for line, question in zip(output, questions, strict=True):
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["status_code"] == 200 and line["response"]["request_id"].startswith("req_")
        answer = ChatCompletion.model_validate(line["response"]["body"])
        direct = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": question}],
                                                **SHORT)
        assert answer.choices[0].message.content == direct.choices[0].message.content  # greedy: the same answer
        assert answer.usage == direct.usage
    assert batch.usage.input_tokens == sum(o["response"]["body"]["usage"]["prompt_tokens"] for o in output)
    assert batch.usage.output_tokens == sum(o["response"]["body"]["usage"]["completion_tokens"] for o in output)

    errors = {e["custom_id"]: e for e in _lines(client, batch.error_file_id)}
    assert list(errors) == [None, "wrong-url", "no-such-model", "streamed"]  # in input order
    assert errors[None]["response"] is None and errors[None]["error"]["line"] == 3
    assert errors[None]["error"]["code"] == "invalid_json_line" and "Line 3" in errors[None]["error"]["message"]
    assert errors["wrong-url"]["error"] == {"code": "invalid_url", "line": 6, "message": (
        "Line 6: url '/v1/responses' is not this batch's endpoint '/v1/chat/completions'.")}
    missing = errors["no-such-model"]["response"]
    assert missing["status_code"] == 404 and missing["body"]["error"]["code"] == "model_not_found"
    streamed = errors["streamed"]["response"]
    assert streamed["status_code"] == 400 and streamed["body"]["error"]["param"] == "stream"

    files = {f.id: f for f in client.files.list(purpose="batch_output")}
    assert files[batch.output_file_id].filename == f"{batch.id}_output.jsonl"
    assert [b.id for b in client.batches.list()] == [batch.id]


def test_a_responses_batch_answers_as_the_endpoint_does(client):
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/responses",
            "body": {"model": "tiny", "input": "Where is my card?", "max_output_tokens": 16, "temperature": 0}}
    batch = client.batches.create(input_file_id=_upload(client, [line]), endpoint="/v1/responses",
                                  completion_window="24h")
    batch = _wait(client, batch.id)
    assert batch.status == "completed" and batch.model == "tiny", batch
    assert batch.error_file_id is None, _lines(client, batch.error_file_id)
    [output] = _lines(client, batch.output_file_id)
    answer = Response.model_validate(output["response"]["body"])
    direct = client.responses.create(**line["body"])
    assert answer.output_text == direct.output_text and answer.usage.output_tokens == batch.usage.output_tokens


def test_a_file_without_a_good_line_fails_the_batch_naming_its_lines(client):
    batch = client.batches.create(input_file_id=_upload(client, ["[1, 2]", "", {"custom_id": "x"}]),
                                  endpoint="/v1/chat/completions", completion_window="24h")
    batch = _wait(client, batch.id)
    assert batch.status == "failed" and batch.failed_at and batch.output_file_id is None
    assert [(e.code, e.line) for e in batch.errors.data] == [("invalid_json_line", 1),
                                                            ("missing_required_parameter", 3)]


def test_refusals_name_their_parameter(client):
    batch_file = _upload(client, [_chat_line("a", "hi")])
    tuning = client.files.create(file=("t.jsonl", io.BytesIO(b'{"messages": []}\n')), purpose="fine-tune").id
    cases = [
        (dict(input_file_id=batch_file, endpoint="/v1/embeddings", completion_window="24h"), 400, "endpoint"),
        (dict(input_file_id=batch_file, endpoint="/v1/chat/completions", completion_window="1h"), 400,
         "completion_window"),
        (dict(input_file_id=tuning, endpoint="/v1/chat/completions", completion_window="24h"), 400, "input_file_id"),
        (dict(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"), 404,
         "input_file_id"),
    ]
    for params, status, param in cases:
        with pytest.raises(openai.APIStatusError) as refused:
            client.batches.create(**params)
        assert refused.value.status_code == status and refused.value.body["param"] == param, params
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def test_cancel_stops_the_batch_and_reports_what_ran(client):
    lines = [_chat_line(f"c{i}", f"Tell me about card {i}", max_tokens=32) for i in range(200)]
    batch = client.batches.create(input_file_id=_upload(client, lines), endpoint="/v1/chat/completions",
                                  completion_window="24h")
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    batch = _wait(client, batch.id)
    assert batch.status == "cancelled" and batch.cancelled_at >= batch.cancelling_at
    counts = batch.request_counts
    assert counts.completed + counts.failed == counts.total and counts.completed < 200
    output, errors = _lines(client, batch.output_file_id), _lines(client, batch.error_file_id)
    assert len(output) == counts.completed and len(errors) == counts.failed
    if counts.total:  # read before the cancel: the requests never run are in the error file, saying why
        assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.cancel(batch.id)
    assert refused.value.body["code"] == "batch_not_active"


def test_another_organisation_sees_none_of_it(org_client):
    a, b = org_client("key-a"), org_client("key-b")
    input_id = _upload(a, [_chat_line("a", "hi")])
    with pytest.raises(openai.NotFoundError):  # another's file can't be a batch's input
        b.batches.create(input_file_id=input_id, endpoint="/v1/chat/completions", completion_window="24h")
    batch = a.batches.create(input_file_id=input_id, endpoint="/v1/chat/completions", completion_window="24h")
    for call in (b.batches.retrieve, b.batches.cancel):
        with pytest.raises(openai.NotFoundError):
            call(batch.id)
    assert list(b.batches.list()) == []
    assert _wait(a, batch.id).status == "completed"


def test_a_batch_past_its_window_expires_with_the_rest_in_the_error_file(client):
    from sqlalchemy import update

    from selftune.store.tables import BatchRow

    lines = [_chat_line(f"e{i}", f"Tell me about card {i}", max_tokens=32) for i in range(200)]
    batch = client.batches.create(input_file_id=_upload(client, lines), endpoint="/v1/chat/completions",
                                  completion_window="24h")
    with _session() as session:  # the 24 hours are over (the runner reads the clock against expires_at)
        session.execute(update(BatchRow).where(BatchRow.id == batch.id).values(expires_at=batch.created_at))
    batch = _wait(client, batch.id)
    assert batch.status == "expired" and batch.expired_at
    counts = batch.request_counts
    assert counts.total == 200 and counts.completed + counts.failed == 200 and counts.failed > 0
    errors = _lines(client, batch.error_file_id)
    assert len(errors) == counts.failed and {e["error"]["code"] for e in errors} == {"batch_expired"}
    assert len(_lines(client, batch.output_file_id)) == counts.completed


def test_a_batch_waits_behind_a_training_job(client, tmp_path, chat_rows, upload, wait_until_step, wait_for):
    training = upload(client, tmp_path / "train.jsonl", chat_rows(100))
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id,
                                         hyperparameters={"n_epochs": 3, "batch_size": 1})
    wait_until_step(client, job.id, 2)
    batch = client.batches.create(input_file_id=_upload(client, [_chat_line("w", "hi")]),
                                  endpoint="/v1/chat/completions", completion_window="24h")
    time.sleep(3)  # the runner looks every second or two: long enough to have answered, were it not waiting
    waiting = client.batches.retrieve(batch.id)
    assert waiting.status == "in_progress" and waiting.request_counts.completed == 0
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    client.fine_tuning.jobs.cancel(job.id)
    wait_for(client, job.id)
    assert _wait(client, batch.id).request_counts.completed == 1


def test_more_requests_than_a_batch_holds_fail_it_without_keeping_any(client, monkeypatch):
    from sqlalchemy import func, select

    from selftune.api.batches import lines as batch_lines
    from selftune.store.tables import BatchRequestRow

    monkeypatch.setattr(batch_lines, "MAX_REQUESTS", 3)  # the hosted 50,000, made small
    batch = client.batches.create(input_file_id=_upload(client, [_chat_line(f"m{i}", "hi") for i in range(4)]),
                                  endpoint="/v1/chat/completions", completion_window="24h")
    batch = _wait(client, batch.id)
    assert batch.status == "failed" and batch.request_counts.total == 0
    [error] = batch.errors.data
    assert error.code == "too_many_requests" and error.line == 4 and "at most 3 requests" in error.message
    with _session() as session:  # the rows read before the limit was passed went with the savepoint
        assert session.scalar(select(func.count()).select_from(BatchRequestRow)) == 0
