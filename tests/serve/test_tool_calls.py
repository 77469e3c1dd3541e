"""Reading tool calls out of an answer written in the <tool_call> convention."""

from __future__ import annotations

import json

from selftune.api.chat import tools


def test_calls_are_read_and_the_rest_is_content():
    text = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"days": 2}}\n</tool_call>\n'
            '<tool_call>{"name": "get_time", "parameters": {"utc": true}}</tool_call>')
    content, calls = tools.parse(text, {"get_weather", "get_time"})
    assert content == "Let me check."
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"days": 2}
    assert json.loads(calls[1].function.arguments) == {"utc": True}
    assert len({c.id for c in calls}) == 2


def test_unknown_tools_and_broken_json_stay_text():
    text = '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call> and <tool_call>{"name": </tool_call>'
    assert tools.parse(text, {"get_weather"}) == (text, [])
    assert tools.parse("", {"get_weather"}) == (None, [])
