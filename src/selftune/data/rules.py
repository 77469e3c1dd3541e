"""Rules that span several messages of one example; the shapes are checked by :mod:`formats`.

Each function returns every broken rule of the example as ``(code, field, reason)``.
"""

from __future__ import annotations

from selftune.data.formats import (
    AssistantMessage,
    ChatExample,
    FunctionTool,
    PreferenceExample,
    ToolMessage,
)
from selftune.models.content import text_of

Finding = tuple[str, str | None, str]
NO_TRAINED_ASSISTANT = "no_trained_assistant"  # a chat example with nothing to learn (fine for a prompt)


def chat_rules(example: ChatExample) -> list[Finding]:
    findings = _conversation_rules(example.messages, example.tools, example.parallel_tool_calls, "")
    if not any(isinstance(m, AssistantMessage) and m.trained for m in example.messages):
        findings.append((NO_TRAINED_ASSISTANT, "messages",
                         "no assistant message to train on (add one, or remove weight: 0)"))
    return findings


def chat_advice(example: ChatExample) -> list[Finding]:
    """Legal but probably unintended: worth a warning, not a refusal."""
    return [("empty_answer", f"messages[{i}].content",
             "this trained assistant answer is empty, which teaches the model to stop without answering")
            for i, m in enumerate(example.messages)
            if isinstance(m, AssistantMessage) and m.trained and not m.tool_calls and not text_of(m.content).strip()]


def preference_rules(example: PreferenceExample) -> list[Finding]:
    source = example.input
    findings = _conversation_rules(source.messages, source.tools, source.parallel_tool_calls, "input.")
    for i, message in enumerate(source.messages):
        if isinstance(message, AssistantMessage) and message.weight is not None:
            findings.append(("weight_not_allowed", f"input.messages[{i}].weight",
                             "weight is not used in preference (DPO) files; remove it"))
    if source.messages[-1].role not in ("user", "tool"):
        findings.append(("input_must_end_with_user", f"input.messages[{len(source.messages) - 1}].role",
                         "the input must end with a user (or tool) message, which the outputs answer"))
    names = {t.function.name for t in source.tools} if source.tools else None
    for key in ("preferred_output", "non_preferred_output"):
        answer = getattr(example, key)[0]
        if answer.weight is not None:
            findings.append(("weight_not_allowed", f"{key}[0].weight",
                             "weight is not used in preference (DPO) files; remove it"))
        if answer.content is None and not answer.tool_calls:
            findings.append(("missing_content", f"{key}[0].content", "the answer has no content and no tool_calls"))
        findings.extend(_tool_call_names(answer, names, f"{key}[0]"))
    if _answer(example.preferred_output[0]) == _answer(example.non_preferred_output[0]):
        findings.append(("identical_outputs", "non_preferred_output",
                         "the preferred and non-preferred outputs are identical, so there is nothing to learn"))
    return findings


def _conversation_rules(messages, tools: list[FunctionTool] | None, parallel: bool | None,
                        prefix: str) -> list[Finding]:
    findings: list[Finding] = []
    names = None
    if tools:
        names = set()
        for i, tool in enumerate(tools):
            if tool.function.name in names:
                findings.append(("duplicate_tool_name", f"{prefix}tools[{i}].function.name",
                                 f"tool {tool.function.name!r} is defined twice"))
            names.add(tool.function.name)

    pending: dict[str, str] = {}  # tool_call id -> field of the call, until a tool message answers it
    seen_ids: set[str] = set()
    for i, message in enumerate(messages):
        here = f"{prefix}messages[{i}]"
        if isinstance(message, ToolMessage):
            if message.tool_call_id not in pending:
                findings.append(("unexpected_tool_message", f"{here}.tool_call_id",
                                 f"no earlier assistant tool call has id {message.tool_call_id!r} "
                                 "still waiting for an answer"))
            pending.pop(message.tool_call_id, None)
            continue
        findings.extend(_unanswered(pending))
        pending.clear()
        if not isinstance(message, AssistantMessage):
            continue
        if message.content is None and not message.tool_calls:
            findings.append(("missing_content", f"{here}.content",
                             "an assistant message needs content, tool_calls, or both"))
        findings.extend(_tool_call_names(message, names, here))
        calls = message.tool_calls or []
        if parallel is False and len(calls) > 1:
            findings.append(("parallel_tool_calls_disabled", f"{here}.tool_calls",
                             f"{len(calls)} tool calls in one message, but parallel_tool_calls is false"))
        for j, call in enumerate(calls):
            if call.id in seen_ids:
                findings.append(("duplicate_tool_call_id", f"{here}.tool_calls[{j}].id",
                                 f"tool call id {call.id!r} is used twice in this example"))
            seen_ids.add(call.id)
            pending[call.id] = f"{here}.tool_calls[{j}].id"
    findings.extend(_unanswered(pending))
    return findings


def _unanswered(pending: dict[str, str]) -> list[Finding]:
    return [("unanswered_tool_call", field,
             f"tool call {call_id!r} has no tool message with this tool_call_id after it")
            for call_id, field in pending.items()]


def _tool_call_names(message: AssistantMessage, names: set[str] | None, here: str) -> list[Finding]:
    if names is None:
        return []
    return [("unknown_tool", f"{here}.tool_calls[{j}].function.name",
             f"tool {call.function.name!r} is not among the example's tools")
            for j, call in enumerate(message.tool_calls or []) if call.function.name not in names]


def _answer(message: AssistantMessage) -> str:
    return message.model_dump_json(include={"content", "tool_calls"})
