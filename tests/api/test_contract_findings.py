"""Regression tests for what the contract fuzzer (tests/fuzz) found: each a request that once got a 5xx,
an answer off its declared schema, or a 4xx without the error shape."""

from __future__ import annotations

import openai
import pytest


@pytest.mark.parametrize(("call", "param"), [
    ({}, "messages.0.tool_calls.0.id"),  # once a 500: KeyError 'function' while rendering the prompt
    ({"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{bad"}},
     "messages.0.tool_calls.0.function.arguments"),  # once a 500: JSONDecodeError while rendering
])
def test_a_malformed_tool_call_in_the_history_is_refused_by_name(client, call, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", max_tokens=1, messages=[
            {"role": "assistant", "content": None, "tool_calls": [call]}, {"role": "user", "content": "hi"}])
    assert info.value.body["param"] == param


def test_a_top_p_too_small_for_float32_still_answers(client):
    # once a 500: 5e-324 is 0.0 in float32, the nucleus kept no token and sampling failed
    answer = client.chat.completions.create(model="tiny", max_tokens=3, top_p=5e-324, seed=0,
                                            messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content is not None and answer.usage.completion_tokens >= 1


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
def test_every_streamed_event_fits_the_declared_event_schema(client, path):
    """Once an answer off its schema (ST108): the stream was declared a string, and OpenAPI before 3.2
    reads a text/event-stream schema as the schema of each event."""
    import jsonschema_rs  # schemathesis's own validator (installed with it)

    document = client.get("http://testserver/openapi.json", cast_to=object)
    declared = document["paths"][path]["post"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
    if path == "/v1/responses":
        raw = client.responses.with_raw_response.create(model="tiny", input="hi", max_output_tokens=16, stream=True)
    else:
        raw = client.chat.completions.with_raw_response.create(
            model="tiny", max_tokens=3, seed=0, stream=True, messages=[{"role": "user", "content": "hi"}])
    events = []
    raw.http_response.read()
    for block in raw.http_response.text.strip().split("\n\n"):  # one event per blank-line-separated block
        event = {}
        for line in block.splitlines():
            field, _, value = line.partition(": ")
            event[field] = value
        events.append(event)
    assert len(events) >= 3
    validator = jsonschema_rs.validator_for(declared)
    for event in events:
        validator.validate(event)
