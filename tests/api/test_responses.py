"""/v1/responses through the openai SDK: create, streaming (the hosted event sequence, and the SDK's
``responses.stream`` helper), store with retrieve / delete / input_items, previous_response_id,
text.format, function tools, refusals by name, organisations.

Over a real socket, and with a fine-tuned model, in e2e/test_responses.py."""

from __future__ import annotations

import json

import openai
import pytest

QUESTION = "Where is my new card?"
TICKET = {
    "type": "object",
    "properties": {"intent": {"enum": ["card_arrival", "lost_or_stolen_card"]}, "urgent": {"type": "boolean"}},
    "required": ["intent", "urgent"],
    "additionalProperties": False,
}
TICKET_FORMAT = {"format": {"type": "json_schema", "name": "ticket", "schema": TICKET, "strict": True}}
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather forecast for a city",
           "parameters": {"type": "object", "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 7}},
                          "required": ["days"], "additionalProperties": False}}
SHORT = dict(model="tiny", max_output_tokens=16, temperature=0)


def _valid_ticket(text: str) -> None:
    ticket = json.loads(text)
    assert set(ticket) == {"intent", "urgent"} and ticket["intent"] in TICKET["properties"]["intent"]["enum"]
    assert isinstance(ticket["urgent"], bool)


def test_create_retrieve_and_usage(client):
    answer = client.responses.create(input=QUESTION, **SHORT, metadata={"run": "1"})
    assert answer.object == "response" and answer.id.startswith("resp_") and answer.model == "tiny"
    assert answer.status in ("completed", "incomplete") and answer.store is True  # hosted field, not in the SDK type
    message = answer.output[0]
    assert message.type == "message" and message.role == "assistant" and message.content[0].type == "output_text"
    assert answer.output_text == message.content[0].text
    usage = answer.usage
    assert usage.input_tokens > 5 and 1 <= usage.output_tokens <= 16
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    if answer.status == "incomplete":
        assert answer.incomplete_details.reason == "max_output_tokens" and usage.output_tokens == 16
    assert answer.max_output_tokens == 16 and answer.temperature == 0 and answer.metadata == {"run": "1"}
    assert client.responses.retrieve(answer.id).model_dump() == answer.model_dump()

    # instructions are the system message of the prompt: the same as sending that message
    brief = "Answer in one short sentence."
    instructed = client.responses.create(input=QUESTION, instructions=brief, **SHORT)
    as_messages = client.responses.create(input=[{"role": "system", "content": brief},
                                                 {"role": "user", "content": QUESTION}], **SHORT)
    assert instructed.instructions == brief and instructed.usage.input_tokens != usage.input_tokens
    assert as_messages.output_text == instructed.output_text
    assert as_messages.usage.input_tokens == instructed.usage.input_tokens


def test_streamed_events_come_in_the_hosted_order(client):
    whole = client.responses.create(input=QUESTION, **SHORT)
    events = list(client.responses.create(input=QUESTION, **SHORT, stream=True))
    kinds = [e.type for e in events]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * len(deltas),
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     f"response.{whole.status}"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    text = "".join(e.delta for e in deltas)
    assert text == whole.output_text == events[-4].text
    final = events[-1].response
    assert final.output_text == text and final.usage.model_dump() == whole.usage.model_dump()
    assert final.id == events[0].response.id and client.responses.retrieve(final.id).output_text == text


def test_the_sdks_stream_helper_reads_a_structured_answer(client):
    with client.responses.stream(model="tiny", input="My card has not arrived.", text=TICKET_FORMAT,
                                 max_output_tokens=64, temperature=0) as stream:
        snapshots = [e.snapshot for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and snapshots[-1] == final.output_text
    _valid_ticket(final.output_text)
    assert final.text.format.type == "json_schema" and final.text.format.name == "ticket"


def test_a_json_schema_answer_parses_and_validates_even_sampled(client):
    answer = client.responses.create(model="tiny", input="I lost my card yesterday.", text=TICKET_FORMAT,
                                     max_output_tokens=64, temperature=1.0, top_p=0.9)
    assert answer.status == "completed", answer
    _valid_ticket(answer.output_text)
    assert answer.top_p == 0.9


def test_input_items_and_delete(client):
    conversation = [{"role": "developer", "content": "You help bank customers."},
                    {"role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
                    {"type": "message", "role": "assistant", "content": "Hi, how can I help?"},
                    {"role": "user", "content": QUESTION}]
    answer = client.responses.create(input=conversation, **SHORT)
    items = list(client.responses.input_items.list(answer.id))
    assert [(i.type, i.role) for i in items] == [("message", "developer"), ("message", "user"),
                                                 ("message", "assistant"), ("message", "user")]
    assert items[0].content[0].type == "input_text" and items[0].content[0].text == "You help bank customers."
    assert items[2].content[0].type == "output_text" and items[2].content[0].text == "Hi, how can I help?"
    assert len({i.id for i in items}) == 4
    newest = client.responses.input_items.list(answer.id, order="desc", limit=1)
    assert [i.id for i in newest.data] == [items[3].id] and newest.has_more
    after = client.responses.input_items.list(answer.id, after=items[1].id)
    assert [i.id for i in after.data] == [items[2].id, items[3].id] and not after.has_more
    for refused, param in ((dict(extra_query={"before": items[2].id}), "before"),
                           (dict(include=["message.input_image.image_url"]), "include")):
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.input_items.list(answer.id, **refused)
        assert info.value.param == param

    deleted = client.responses.with_raw_response.delete(answer.id).http_response.json()
    assert deleted == {"id": answer.id, "object": "response", "deleted": True}
    for call in (client.responses.retrieve, client.responses.delete, client.responses.input_items.list):
        with pytest.raises(openai.NotFoundError):
            call(answer.id)


def test_previous_response_id_continues_the_stored_conversation(client):
    first = client.responses.create(input="My name is Ada.", instructions="Be brief.", **SHORT)
    second = client.responses.create(input="What is my name?", previous_response_id=first.id, **SHORT)
    assert second.previous_response_id == first.id
    # the prompt is the first exchange, then the new input; the first one's instructions are not carried over
    spelled_out = [{"role": "user", "content": "My name is Ada."},
                   {"role": "assistant", "content": first.output_text},
                   {"role": "user", "content": "What is my name?"}]
    same = client.responses.create(input=spelled_out, **SHORT)
    assert second.usage.input_tokens == same.usage.input_tokens and second.output_text == same.output_text
    assert client.responses.create(input=spelled_out, instructions="Be brief.", **SHORT).usage.input_tokens != \
        second.usage.input_tokens
    # input_items lists this response's input only
    assert [i.content[0].text for i in client.responses.input_items.list(second.id)] == ["What is my name?"]

    # the chain outlives its first response; a response not stored can't be continued
    client.responses.delete(first.id)
    third = client.responses.create(input="And again?", previous_response_id=second.id, **SHORT)
    assert third.usage.input_tokens > second.usage.input_tokens + second.usage.output_tokens
    unstored = client.responses.create(input=QUESTION, store=False, **SHORT)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    for missing in (first.id, unstored.id):
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(input="Hi", previous_response_id=missing, **SHORT)
        assert info.value.param == "previous_response_id" and info.value.code == "previous_response_not_found"


def test_a_function_tool_is_called_then_its_output_continues_the_conversation(client):
    ask = "What will the weather be like this week?"
    called = client.responses.create(model="tiny", input=ask, tools=[WEATHER], max_output_tokens=64,
                                     tool_choice={"type": "function", "name": "get_weather"})
    calls = [item for item in called.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].call_id.startswith("call_")
    assert 1 <= json.loads(calls[0].arguments)["days"] <= 7
    assert called.tools[0].name == "get_weather" and called.tool_choice.name == "get_weather"

    answered = client.responses.create(previous_response_id=called.id, tools=[WEATHER],
                                       input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                                               "output": "Sunny, 24 degrees"}], **SHORT)
    assert answered.output[0].type == "message"
    kinds = [(i.type, getattr(i, "call_id", None)) for i in client.responses.input_items.list(answered.id)]
    assert kinds == [("function_call_output", calls[0].call_id)]

    # streamed: the call arrives as a function_call item with its arguments
    events = list(client.responses.create(model="tiny", input=ask, tools=[WEATHER], max_output_tokens=64,
                                          tool_choice="required", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert events[2].item.type == "function_call" and events[2].item.arguments == ""
    assert kinds[3:] == ["response.function_call_arguments.delta", "response.function_call_arguments.done",
                         "response.output_item.done", "response.completed"]
    assert json.loads(events[4].arguments) == json.loads(events[-1].response.output[0].arguments)


@pytest.mark.parametrize("kwargs, param", [
    (dict(reasoning={"effort": "low"}), "reasoning"),
    (dict(background=True), "background"),
    (dict(conversation="conv_123"), "conversation"),
    (dict(prompt={"id": "pmpt_123"}), "prompt"),
    (dict(include=["message.output_text.logprobs"]), "include"),
    (dict(tools=[{"type": "web_search"}]), "tools[0].type"),
    (dict(tools=[WEATHER, {"type": "file_search", "vector_store_ids": ["vs_1"]}]), "tools[1].type"),
    (dict(tools=[{**WEATHER, "name": "has space"}]), "tools[0].name"),
    (dict(tool_choice="required"), "tool_choice"),
    (dict(tools=[WEATHER], tool_choice={"type": "web_search_preview"}), "tool_choice"),
    (dict(truncation="auto"), "truncation"),
    (dict(extra_body={"frobnicate": 1}), "frobnicate"),
    (dict(max_output_tokens=5), "max_output_tokens"),
    (dict(temperature=3), "temperature"),
    (dict(text={"format": {"type": "json_object"}}), "input"),  # the hosted rule: the input must say "json"
    (dict(text={"format": {"type": "json_schema", "schema": TICKET}}), "text.format.name"),
    (dict(text={"format": {"type": "yaml"}}), "text.format.type"),
    (dict(input=[{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]),
     "input[0].content[0]"),
    (dict(input=[{"type": "reasoning", "summary": []}]), "input[0].type"),
    (dict(input=[{"role": "tool", "content": "x"}]), "input[0].role"),
    (dict(input=[{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}]), "input[0].arguments"),
    (dict(max_output_tokens=10_000_000), "input"),
])
def test_unsupported_or_bad_fields_are_refused_by_name(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(**{"model": "tiny", "input": QUESTION, "max_output_tokens": 16, **kwargs})
    assert info.value.param == param, info.value.message


def test_another_organisations_responses_are_404(org_client):
    mine, theirs = org_client("key-a"), org_client("key-b")
    answer = mine.responses.create(input=QUESTION, **SHORT)
    for call in (theirs.responses.retrieve, theirs.responses.delete, theirs.responses.input_items.list):
        with pytest.raises(openai.NotFoundError):
            call(answer.id)
    with pytest.raises(openai.BadRequestError) as info:
        theirs.responses.create(input="Hi", previous_response_id=answer.id, **SHORT)
    assert info.value.code == "previous_response_not_found"
    assert mine.responses.retrieve(answer.id).id == answer.id
    with pytest.raises(openai.NotFoundError):
        mine.responses.create(input=QUESTION, **{**SHORT, "model": "no-such-model"})


def test_an_engine_fault_mid_stream_is_an_error_event_then_response_failed(client, monkeypatch):
    """The status line is sent: the fault travels as the hosted ``error`` event, then ``response.failed``;
    the response is not stored."""
    from selftune.serve.embedded import EmbeddedEngine

    advance = EmbeddedEngine._advance

    def failing(self, sequence, logits):
        if sequence.generated >= 3:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        advance(self, sequence, logits)

    monkeypatch.setattr(EmbeddedEngine, "_advance", failing)
    events = list(client.responses.create(input=QUESTION, stream=True, **{**SHORT, "max_output_tokens": 50}))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-2:] == ["error", "response.failed"]
    assert "response.output_text.delta" in kinds  # what came before the fault was delivered
    assert events[-2].code == "generation_failed" and "CUDA error" in events[-2].message
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "generation_failed"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(failed.id)
