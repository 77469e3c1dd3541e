"""/v1/responses against a live ``selftune serve`` over a real socket: the SDK's create, stream, retrieve
and input_items with previous_response_id; and (slow) a fine-tuned model and its checkpoint answering.

The rules of each field and event are tested in-process (tests/api/test_responses.py); here the point
is the socket (uvicorn's chunked SSE, with ``event:`` lines) and the models a job makes.
"""

from __future__ import annotations

import json

import pytest

SHORT = dict(max_output_tokens=16, temperature=0)


def test_create_stream_retrieve_and_continue_over_a_socket(shared_server):
    client = shared_server.client()
    first = client.responses.create(model="tiny", input="My card has not arrived.", instructions="Be brief.",
                                    **SHORT)
    with client.responses.stream(model="tiny", input="Where is it now?", previous_response_id=first.id,
                                 **SHORT) as stream:
        events = list(stream)
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    second = client.responses.retrieve(events[0].response.id)  # stored once streamed
    assert second.output_text == "".join(deltas) and second.status == events[-1].response.status
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens > first.usage.input_tokens  # the first exchange is in its prompt
    assert [i.content[0].text for i in client.responses.input_items.list(second.id)] == ["Where is it now?"]

    with client.responses.with_streaming_response.create(model="tiny", input="Hello", stream=True,
                                                         **SHORT) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in raw.iter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    bodies = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert names == [b["type"] for b in bodies] and names[0] == "response.created"
    assert names[-1] in ("response.completed", "response.incomplete")  # and no [DONE]: hosted sends none


@pytest.mark.slow  # trains a job (~20 s on the tiny model)
def test_fine_tuned_and_checkpoint_models_answer(shared_server, tmp_path, chat_rows, upload, wait_for):
    client = shared_server.client()
    rows = chat_rows(20)
    training = upload(client, tmp_path / "train.jsonl", rows)
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id, suffix="resp", seed=0,
                                         hyperparameters={"n_epochs": 20, "learning_rate_multiplier": 10})
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    question = rows[3]["messages"][:2]
    tuned = client.responses.create(model=job.fine_tuned_model, input=question, **SHORT)
    assert tuned.output_text.startswith(rows[3]["messages"][2]["content"]), tuned  # it learnt its data
    assert client.responses.create(model="tiny", input=question, **SHORT).output_text != tuned.output_text
    checkpoint = next(iter(client.fine_tuning.jobs.checkpoints.list(job.id))).fine_tuned_model_checkpoint
    assert client.responses.create(model=checkpoint, input=question, **SHORT).model == checkpoint
