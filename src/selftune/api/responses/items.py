"""Responses input and settings, turned into what chat completions already serve.

A response's ``input`` is a list of items (messages, function calls, their outputs); here each is
checked (a refusal names ``input[i]...``), given an id as the hosted API does, and the conversation of
items becomes chat messages. Tools, ``tool_choice`` and ``text.format`` become their chat forms, so
that chat completions' prompt rendering, grammars and tool reading serve both surfaces.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import ValidationError

from selftune.api.chat.protocol import FunctionDefinition
from selftune.api.errors import APIError, bad_request, invalid_value
from selftune.api.responses.protocol import (
    FunctionCall,
    FunctionCallOutput,
    InputMessage,
    InputText,
    OutputMessage,
    OutputText,
)
from selftune.store.tables import new_id

# input item types of the hosted API that need a tool or state selftune does not have
NOT_YET_ITEMS = {"item_reference": "item references", "reasoning": "reasoning items"}


class FunctionTool(FunctionDefinition):
    """A function tool as the Responses API writes it: flat, not under ``function``."""

    type: Literal["function"]


def read_input(value: str | list[dict[str, Any]]) -> list[dict]:
    """The request's ``input`` as items with ids (what ``input_items`` lists)."""
    if isinstance(value, str):
        return [InputMessage(id=new_id("msg_"), role="user", content=[InputText(text=value)]).model_dump()]
    if not value:
        raise bad_request("input must hold at least one item.", param="input")
    return [_item(item, f"input[{i}]") for i, item in enumerate(value)]


def _item(item: dict, param: str) -> dict:
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        return _message(item, param)
    if kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                raise bad_request(f"Missing required parameter: '{param}.{name}'.", param=f"{param}.{name}",
                                  code="missing_required_parameter")
        try:
            json.loads(item["arguments"])
        except ValueError:
            raise bad_request("arguments must be JSON text.", param=f"{param}.arguments") from None
        return FunctionCall(id=_id(item, "fc_"), call_id=item["call_id"], name=item["name"],
                            arguments=item["arguments"]).model_dump()
    if kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise bad_request(f"Missing required parameter: '{param}.call_id'.", param=f"{param}.call_id",
                              code="missing_required_parameter")
        output = _text(item.get("output"), f"{param}.output", ("input_text", "output_text"))
        return FunctionCallOutput(id=_id(item, "fco_"), call_id=item["call_id"], output=output).model_dump()
    if kind in NOT_YET_ITEMS:
        raise bad_request(f"Input items of type {kind!r} ({NOT_YET_ITEMS[kind]}) are not supported yet by selftune.",
                          param=f"{param}.type", code="unsupported_parameter")
    raise bad_request(f"Input items of type {kind!r} are not supported: selftune reads messages, function_call "
                      "and function_call_output items.", param=f"{param}.type", code="invalid_value")


def _message(item: dict, param: str) -> dict:
    role = item.get("role")
    if role in ("user", "system", "developer"):
        text = _text(item.get("content"), f"{param}.content", ("input_text",))
        return InputMessage(id=_id(item, "msg_"), role=role, content=[InputText(text=text)]).model_dump()
    if role == "assistant":
        text = _text(item.get("content"), f"{param}.content", ("output_text", "input_text"))
        return OutputMessage(id=_id(item, "msg_"), status="completed", content=[OutputText(text=text)]).model_dump()
    raise bad_request(f"Invalid value: {role!r}. Supported values are: 'user', 'assistant', 'system' and "
                      "'developer'.", param=f"{param}.role", code="invalid_value")


def _text(content: Any, param: str, kinds: tuple[str, ...]) -> str:
    """A message's text: a string, or text parts of the given kinds (joined)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"{param} must be a string or a list of content parts.", param=param)
    texts = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in kinds:
            raise bad_request(f"Content parts of type {kind!r} are not supported here: selftune's models read "
                              f"text only ({', '.join(kinds)}).", param=f"{param}[{k}]")
        if not isinstance(part.get("text"), str):
            raise bad_request(f"Missing required parameter: '{param}[{k}].text'.", param=f"{param}[{k}].text",
                              code="missing_required_parameter")
        texts.append(part["text"])
    return "".join(texts)


def _id(item: dict, prefix: str) -> str:
    given = item.get("id")
    return given if isinstance(given, str) and given else new_id(prefix)


def to_messages(items: list[dict]) -> list[dict]:
    """A conversation of items as chat messages; consecutive function calls join the assistant turn
    they belong to."""
    messages: list[dict] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            messages.append({"role": item["role"], "content": "".join(part["text"] for part in item["content"])})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return messages


def chat_tools(tools: list[dict] | None) -> list[dict] | None:
    """Function tools in the chat form; a built-in tool (web search, file search...) is a 400 naming it."""
    if tools is None:
        return None
    converted = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind != "function":
            raise bad_request(f"Built-in tools are not supported by selftune: {kind!r}. Only function tools are.",
                              param=f"tools[{i}].type", code="unsupported_parameter")
        try:
            function = FunctionTool.model_validate(tool)
        except ValidationError as problem:
            error = invalid_value(problem.errors())
            raise bad_request(error.message, param=f"tools[{i}].{error.param}" if error.param else f"tools[{i}]",
                              code="invalid_value") from None
        converted.append({"type": "function",
                          "function": function.model_dump(exclude_none=True, exclude={"type"})})
    return converted


def chat_tool_choice(choice: str | dict | None) -> str | dict | None:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise bad_request(f"tool_choice of type {choice.get('type')!r} is not supported by selftune: use 'none', 'auto', "
                      "'required' or {\"type\": \"function\", \"name\": ...}.", param="tool_choice",
                      code="unsupported_parameter")


def response_format(text_format: dict | None) -> dict | None:
    """``text.format`` as chat's ``response_format`` (whose checks then apply)."""
    if text_format is None:
        return None
    if text_format.get("type") != "json_schema":
        return text_format
    spec = {k: text_format[k] for k in ("name", "schema", "strict", "description") if k in text_format}
    return {"type": "json_schema", "json_schema": spec}


# chat completions' parameter names, as the Responses request spells them
_PARAMS = {"response_format.json_schema.name": "text.format.name",
           "response_format.json_schema.schema": "text.format.schema",
           "response_format.json_schema": "text.format", "response_format.type": "text.format.type",
           "response_format": "text.format", "max_completion_tokens": "max_output_tokens", "messages": "input"}


def translated(error: APIError) -> APIError:
    """An error chat completions raised for the request made from this one, naming this one's fields."""
    param = error.param
    if param is None:
        return error
    name = "input" if param.startswith("messages") else _PARAMS.get(param, param)
    message = error.message.replace("'messages'", "'input'").replace(param, name)
    if param.startswith("response_format"):
        message = message.replace("response_format", "text.format")
    return APIError(error.status, message, param=name, code=error.code, type=error.type)
