"""/v1/chat/completions through the openai SDK: answers, streaming, usage, sampling, refusals, fine-tuned models.

Streaming over a real socket, and ``selftune chat`` against a server, are in e2e/test_streaming.py."""

from __future__ import annotations

import openai
import pytest

HELLO = [{"role": "user", "content": "Where is my new card?"}]


def test_answer_and_usage(client):
    answer = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=5, temperature=0)
    choice = answer.choices[0]
    assert answer.object == "chat.completion" and answer.model == "tiny" and answer.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    usage = answer.usage
    assert usage.prompt_tokens > 5 and usage.completion_tokens <= 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if choice.finish_reason == "length":
        assert usage.completion_tokens == 5


def test_streaming_equals_the_whole_answer(client):
    kwargs = dict(model="tiny", messages=HELLO, max_tokens=8, temperature=0)
    whole = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()


def test_seed_n_and_stop(client):
    kwargs = dict(model="tiny", messages=HELLO, max_tokens=10, temperature=1.0, seed=7)
    first = client.chat.completions.create(**kwargs).choices[0].message.content
    assert client.chat.completions.create(**kwargs).choices[0].message.content == first

    many = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=6, n=3, seed=1)
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert many.usage.completion_tokens <= 18

    greedy = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=6, temperature=0)
    text = greedy.choices[0].message.content
    if len(text) >= 2:
        stopped = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=6, temperature=0,
                                                 stop=[text[1:3]])
        assert stopped.choices[0].finish_reason == "stop"
        assert stopped.choices[0].message.content == text[: text.find(text[1:3])]


def test_logprobs(client):
    answer = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=4, temperature=0,
                                            logprobs=True, top_logprobs=3)
    entries = answer.choices[0].logprobs.content
    assert 1 <= len(entries) <= 4
    for entry in entries:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob >= entry.logprob - 1e-6  # greedy picked the most likely


@pytest.mark.parametrize("kwargs, param", [
    (dict(tool_choice="auto"), "tool_choice"),
    (dict(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice={"type": "function",
                                                                                "function": {"name": "g"}}),
     "tool_choice"),
    (dict(response_format={"type": "json_object"}), "messages"),  # the hosted rule: the prompt must say "json"
    (dict(response_format={"type": "json_schema", "json_schema": {"schema": {}}}), "response_format.json_schema.name"),
    (dict(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objectx"}}}),
     "response_format"),
    (dict(response_format={"type": "yaml"}), "response_format.type"),
    (dict(logit_bias={"1": 5}), "logit_bias"),
    (dict(extra_body={"frobnicate": 1}), "frobnicate"),
    (dict(top_logprobs=2), "top_logprobs"),
    (dict(temperature=3), "temperature"),
    (dict(n=0), "n"),
    (dict(max_tokens=10_000_000), "messages"),
    (dict(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
     "messages.[0].content"),
])
def test_bad_parameters_are_refused_by_name(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**{"model": "tiny", "messages": HELLO, "max_tokens": 2, **kwargs})
    assert info.value.param == param, info.value.message


def test_unknown_model_is_404(client):
    for model in ("no-such-model", "ft:tiny:local::nope"):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=model, messages=HELLO)


def test_a_fine_tuned_model_answers_as_soon_as_its_job_succeeds(client, tmp_path, chat_rows, upload, wait_for):
    rows = chat_rows(20)
    training = upload(client, tmp_path / "train.jsonl", rows)
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id, suffix="intents", seed=0,
                                         hyperparameters={"n_epochs": 20, "learning_rate_multiplier": 10})
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    question = rows[3]["messages"][:2]
    tuned = client.chat.completions.create(model=job.fine_tuned_model, messages=question, max_tokens=8, temperature=0)
    base = client.chat.completions.create(model="tiny", messages=question, max_tokens=8, temperature=0)
    # it learnt its data (the 2-layer test model learns the answer; ending it cleanly takes longer)
    assert tuned.choices[0].message.content.startswith(rows[3]["messages"][2]["content"]), tuned
    assert base.choices[0].message.content != tuned.choices[0].message.content
    checkpoint = next(iter(client.fine_tuning.jobs.checkpoints.list(job.id))).fine_tuned_model_checkpoint
    assert client.chat.completions.create(model=checkpoint, messages=question, max_tokens=4).choices
