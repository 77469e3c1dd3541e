"""response_format and tools through the openai SDK: the answer follows the schema even from a random model."""

from __future__ import annotations

import json

TICKET = {
    "type": "object",
    "properties": {
        "intent": {"enum": ["card_arrival", "lost_or_stolen_card", "exchange_rate"]},
        "urgent": {"type": "boolean"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["intent", "urgent", "priority"],
    "additionalProperties": False,
}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather forecast for a city",
                                             "parameters": {"type": "object", "properties": {
                                                 "unit": {"enum": ["celsius", "fahrenheit"]},
                                                 "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                                                 "required": ["unit", "days"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"utc": {"type": "boolean"}}, "required": ["utc"], "additionalProperties": False}}}
QUESTION = [{"role": "user", "content": "My card has not arrived. Answer in JSON."}]


def _valid_ticket(text: str) -> None:
    ticket = json.loads(text)
    assert set(ticket) == {"intent", "urgent", "priority"}
    assert ticket["intent"] in TICKET["properties"]["intent"]["enum"]
    assert isinstance(ticket["urgent"], bool) and 1 <= ticket["priority"] <= 5


def test_json_schema_answers_parse_and_validate_even_sampled_and_streamed(client):
    response_format = {"type": "json_schema", "json_schema": {"name": "ticket", "schema": TICKET, "strict": True}}
    answer = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=64, n=3, seed=3,
                                            temperature=1.0, response_format=response_format)
    for choice in answer.choices:
        assert choice.finish_reason == "stop", choice
        _valid_ticket(choice.message.content)
    chunks = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=64, temperature=0,
                                            response_format=response_format, stream=True)
    _valid_ticket("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))


def test_json_object_answers_are_objects(client):
    answer = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=200, n=4, seed=0,
                                            response_format={"type": "json_object"})
    stopped = [c for c in answer.choices if c.finish_reason == "stop"]
    for choice in answer.choices:
        assert choice.message.content.startswith("{")
    for choice in stopped:
        assert isinstance(json.loads(choice.message.content), dict)


def test_a_named_or_required_tool_is_called_with_valid_arguments(client):
    ask = [{"role": "user", "content": "What will the weather be like in Lisbon this week?"}]
    named = client.chat.completions.create(model="tiny", messages=ask, tools=[WEATHER, TIME], max_tokens=64,
                                           tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = named.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert arguments["unit"] in ("celsius", "fahrenheit") and 1 <= arguments["days"] <= 7

    required = client.chat.completions.create(model="tiny", messages=ask, tools=[WEATHER, TIME], max_tokens=64,
                                              tool_choice="required", temperature=0)
    assert required.choices[0].message.tool_calls[0].function.name in ("get_weather", "get_time")

    chunks = list(client.chat.completions.create(model="tiny", messages=ask, tools=[WEATHER, TIME], max_tokens=64,
                                                 tool_choice="required", temperature=0, stream=True))
    streamed = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert [t.function.model_dump() for t in streamed] == [
        t.function.model_dump() for t in required.choices[0].message.tool_calls]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_conversation_with_tool_results_continues(client):
    history = [{"role": "user", "content": "Weather in Lisbon?"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"unit": "celsius", "days": 1}'}}]},
               {"role": "tool", "tool_call_id": "call_1", "content": '{"forecast": "sunny, 24C"}'}]
    answer = client.chat.completions.create(model="tiny", messages=history, tools=[WEATHER], max_tokens=8,
                                            tool_choice="none", temperature=0)
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].finish_reason in ("stop", "length")
