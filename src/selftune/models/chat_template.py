"""Render a conversation with the model's own chat template and mark the tokens that are trained.

transformers can return an assistant mask only for templates written with ``{% generation %}``
tags, which most templates (SmolLM2's included) lack. So the mask is found by rendering
prefixes: the text an assistant message adds after ``add_generation_prompt`` is exactly what the
model must learn to produce, up to and including its end-of-turn token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from selftune.errors import SelftuneError
from selftune.models.content import text_of


@dataclass(frozen=True)
class RenderedExample:
    input_ids: list[int]
    trained: list[bool]  # per token: does the loss include predicting this token?

    @property
    def n_trained(self) -> int:
        return sum(self.trained)


class ChatTemplateError(SelftuneError):
    """The template renders a conversation in a way the loss mask can't be derived from."""


def render_text(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> str:
    """The conversation as the model sees it, as text (no loss mask; cheaper)."""
    template = tokenizer.chat_template or ""
    chat, _ = _prepare(messages, tools, template)
    return tokenizer.apply_chat_template(chat, tools=tools if tools and "tools" in template else None,
                                         tokenize=False)


def render_prompt(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
    """Token ids of a conversation followed by the assistant's turn opening: what a served model
    continues. Rendered exactly as training renders it, so a fine-tuned model sees what it learnt."""
    template = tokenizer.chat_template or ""
    chat, _ = _prepare(messages, tools, template)
    ids = tokenizer.apply_chat_template(chat, tools=tools if tools and "tools" in template else None,
                                        add_generation_prompt=True, tokenize=True, return_dict=False)
    return list(ids)


def render_for_training(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> RenderedExample:
    """Tokens of the whole conversation, and which of them carry loss.

    ``messages`` are hosted-format dicts. An assistant message is trained unless its
    ``weight`` is 0; no other role ever is.
    """
    template = tokenizer.chat_template or ""
    chat, trained_flags = _prepare(messages, tools, template)
    tools_arg = tools if tools and "tools" in template else None

    def render(msgs: list[dict], prompt: bool) -> str:
        return tokenizer.apply_chat_template(
            msgs, tools=tools_arg, tokenize=False, add_generation_prompt=prompt
        )

    full = render(chat, False)
    spans = []
    for i, trained in enumerate(trained_flags):
        if not trained:
            continue
        before = render(chat[:i], True) if i else _opening_prefix(render, chat[0])
        upto = render(chat[: i + 1], False)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise ChatTemplateError(
                f"the chat template does not render message {i} as a continuation of the ones "
                "before it, so its tokens can't be located for the loss mask"
            )
        spans.append((len(before), _end_of_turn(upto, len(before), tokenizer.eos_token)))

    encoding = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    trained_mask = [any(s <= start < e for s, e in spans) for start, _ in encoding["offset_mapping"]]
    return RenderedExample(input_ids=list(encoding["input_ids"]), trained=trained_mask)


_SENTINEL = "\u2063selftune-answer\u2063"


def _opening_prefix(render, message: dict) -> str:
    """What the template puts before an assistant message that opens the conversation.

    Templates can't render an empty history, so render the message with a sentinel as its
    content and keep the text before it (a default system prompt, the role header).
    """
    text = render([{**message, "content": _SENTINEL}], False)
    at = text.find(_SENTINEL)
    if at == -1:
        raise ChatTemplateError("the chat template drops the content of an opening assistant message")
    return text[:at]


def _end_of_turn(text: str, start: int, eos: str | None) -> int:
    """End of the trained span: through the last end-of-turn token, not the newline after it."""
    if eos:
        at = text.rfind(eos, start)
        if at != -1:
            return at + len(eos)
    return len(text.rstrip())


def _prepare(messages: list[dict], tools: list[dict] | None, template: str) -> tuple[list[dict], list[bool]]:
    """Hosted-format messages -> what chat templates expect (plain string content, no weight).

    Templates without tool support get tool calls and tool definitions as text, in the
    ``<tool_call>`` / ``<tools>`` convention that Hermes- and Qwen-style models use.
    """
    native_tools = "tool_calls" in template
    knows_developer = "developer" in template
    chat, trained = [], []
    for message in messages:
        role = message["role"]
        if role == "developer" and not knows_developer:
            role = "system"  # the hosted API treats developer messages as system messages
        out = {"role": role, "content": text_of(message.get("content"), separator="\n")}
        if message.get("name"):
            out["name"] = message["name"]
        if message.get("tool_calls"):
            if native_tools:
                out["tool_calls"] = message["tool_calls"]
            else:
                calls = "\n".join(
                    "<tool_call>\n" + json.dumps({"name": c["function"]["name"],
                                                  "arguments": json.loads(c["function"]["arguments"])})
                    + "\n</tool_call>"
                    for c in message["tool_calls"]
                )
                out["content"] = f"{out['content']}\n{calls}" if out["content"] else calls
        if message.get("tool_call_id") and native_tools:
            out["tool_call_id"] = message["tool_call_id"]
        chat.append(out)
        trained.append(message["role"] == "assistant" and message.get("weight", 1) != 0)
    if tools and "tools" not in template:
        listing = "You can call these tools:\n<tools>\n" + "\n".join(json.dumps(t) for t in tools) + "\n</tools>"
        if chat and chat[0]["role"] in ("system", "developer"):
            chat[0] = {**chat[0], "content": f"{chat[0]['content']}\n\n{listing}"}
        else:
            chat.insert(0, {"role": "system", "content": listing})
            trained.insert(0, False)
    return chat, trained
