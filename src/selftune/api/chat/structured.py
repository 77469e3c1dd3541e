"""``response_format`` and forced tool calls, turned into the grammar the engine decodes under.

The hosted API's rules are kept: ``json_object`` needs the word "json" in the messages (so the model
is told to write JSON, not only forced to); ``json_schema`` needs a name. The grammar itself is
llguidance's (:mod:`selftune.serve.constraints`).
"""

from __future__ import annotations

import re

from selftune.api.chat.protocol import ChatCompletionRequest
from selftune.api.errors import bad_request

ANY_OBJECT = {"type": "object"}
SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_OPENING, TOOL_CLOSING = "<tool_call>\n", "\n</tool_call>"  # the convention training renders calls in


def answer_schema(request: ChatCompletionRequest) -> dict | None:
    """The JSON schema the answer must match, or None for free text; 400 for a malformed request."""
    response_format = request.response_format or {"type": "text"}
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        if not any("json" in _text(m.content).lower() for m in request.messages):
            raise bad_request("'messages' must contain the word 'json' in some form, to use 'response_format' of "
                              "type 'json_object'.", param="messages")
        return ANY_OBJECT
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise bad_request("Missing required parameter: 'response_format.json_schema'.",
                              param="response_format.json_schema", code="missing_required_parameter")
        if not SCHEMA_NAME.match(str(spec.get("name", ""))):
            raise bad_request("response_format.json_schema.name must be 1-64 letters, digits, '_' or '-'.",
                              param="response_format.json_schema.name")
        schema = spec.get("schema", ANY_OBJECT)
        if not isinstance(schema, dict):
            raise bad_request("response_format.json_schema.schema must be a JSON schema object.",
                              param="response_format.json_schema.schema")
        return schema
    raise bad_request(f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object' and 'json_schema'.",
                      param="response_format.type", code="invalid_value")


def call_schema(name: str, parameters: dict | None) -> dict:
    """A tool call as the model writes it: ``{"name": ..., "arguments": {...}}``."""
    return {"type": "object", "properties": {"name": {"const": name}, "arguments": parameters or ANY_OBJECT},
            "required": ["name", "arguments"], "additionalProperties": False}


def grammar(request: ChatCompletionRequest) -> str | None:
    """The grammar for the request's answer: a forced tool call, JSON, or (auto tools with JSON) either."""
    from selftune.serve.constraints import json_grammar

    schema = answer_schema(request)
    choice = request.tool_choice or "auto"
    tools = request.tools if choice != "none" else None
    calls = []
    for tool in tools or []:
        named = isinstance(choice, str) or choice.function.name == tool.function.name
        if named:
            calls.append((TOOL_OPENING, call_schema(tool.function.name, tool.function.parameters), TOOL_CLOSING))
    if tools and choice != "auto":
        return json_grammar(calls)  # required, or one named function
    if schema is None:
        return None  # free text (and, with tools, free to call one)
    return json_grammar([*calls, ("", schema, "")])


def _text(content) -> str:
    if isinstance(content, list):
        return "\n".join(part.text or "" for part in content)
    return content or ""
