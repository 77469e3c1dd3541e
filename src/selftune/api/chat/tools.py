"""Tools: what the prompt says about them, and the tool calls read back out of an answer.

Models call tools in the ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` convention of
Hermes- and Qwen-style templates; selftune's training renders tool calls the same way for templates
without tool support, so a model fine-tuned on tool-calling data answers in the form read here.
"""

from __future__ import annotations

import json
import re
import secrets

from selftune.api.chat.protocol import ChatCompletionRequest, FunctionCall, ToolCall
from selftune.api.chat.structured import TOOL_CLOSING, TOOL_OPENING
from selftune.api.errors import bad_request

CALL = re.compile(re.escape(TOOL_OPENING.strip()) + r"\s*(.*?)\s*" + re.escape(TOOL_CLOSING.strip()), re.S)


def check(request: ChatCompletionRequest, chat_template: str) -> None:
    """400 for tool settings the hosted API refuses, or that this model's template can't express."""
    choice = request.tool_choice
    if choice is not None and not request.tools:
        raise bad_request("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
                          "specified.", param="tool_choice")
    names = [t.function.name for t in request.tools or []]
    if len(set(names)) != len(names):
        raise bad_request("Tool names must be unique.", param="tools")
    if choice is not None and not isinstance(choice, str) and choice.function.name not in names:
        raise bad_request(f"Invalid value for 'tool_choice': no function named {choice.function.name!r} is "
                          "specified in 'tools'.", param="tool_choice")
    native = "tools" in chat_template
    if request.tools and native and TOOL_OPENING.strip() not in chat_template:
        raise bad_request("This model's chat template calls tools in a format other than <tool_call> tags, which "
                          "selftune does not read yet.", param="tools", code="unsupported_parameter")


def for_template(request: ChatCompletionRequest) -> list[dict] | None:
    """Tool definitions as chat templates take them (the hosted request's own shape)."""
    if not request.tools:
        return None
    return [tool.model_dump(exclude_none=True) for tool in request.tools]


def parse(text: str, names: set[str]) -> tuple[str | None, list[ToolCall]]:
    """(the text outside tool calls or None, the calls); a block that is not a call of a known tool
    stays in the text, as the model wrote it."""
    calls, kept, end = [], [], 0
    for match in CALL.finditer(text):
        try:
            body = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        if not isinstance(body, dict) or body.get("name") not in names:
            continue
        arguments = body.get("arguments", body.get("parameters", {}))
        calls.append(ToolCall(id="call_" + secrets.token_hex(12),
                              function=FunctionCall(name=body["name"], arguments=json.dumps(arguments))))
        kept.append(text[end:match.start()])
        end = match.end()
    kept.append(text[end:])
    content = "".join(kept).strip() if calls else text
    return content or None, calls
