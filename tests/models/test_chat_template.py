"""The loss mask: assistant answers and their end-of-turn token, nothing else."""

from __future__ import annotations

import json

import pytest

from selftune.models.chat_template import render_for_training, render_text


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def trained_text(tokenizer, rendered) -> str:
    return tokenizer.decode([t for t, keep in zip(rendered.input_ids, rendered.trained, strict=True) if keep])


def test_only_the_answer_and_end_of_turn_are_trained(tokenizer):
    messages = [{"role": "system", "content": "Classify."}, {"role": "user", "content": "card lost"},
                {"role": "assistant", "content": "lost_or_stolen_card"}]
    rendered = render_for_training(tokenizer, messages)
    assert trained_text(tokenizer, rendered) == "lost_or_stolen_card<|im_end|>"
    assert tokenizer.decode(rendered.input_ids) == render_text(tokenizer, messages)
    assert rendered.input_ids == tokenizer(render_text(tokenizer, messages), add_special_tokens=False)["input_ids"]
    # the first trained token follows the generation prompt exactly
    first = rendered.trained.index(True)
    assert tokenizer.decode(rendered.input_ids[:first]).endswith("<|im_start|>assistant\n")


def test_weight_zero_and_other_roles_are_not_trained(tokenizer):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "bad answer", "weight": 0},
                {"role": "user", "content": "again"}, {"role": "assistant", "content": "good answer", "weight": 1}]
    assert trained_text(tokenizer, render_for_training(tokenizer, messages)) == "good answer<|im_end|>"


def test_multi_turn_trains_every_answer(tokenizer):
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "one"},
                {"role": "user", "content": "b"}, {"role": "assistant", "content": "two"}]
    assert trained_text(tokenizer, render_for_training(tokenizer, messages)) == "one<|im_end|>two<|im_end|>"


def test_tool_messages_are_context_and_calls_are_trained(tokenizer):
    tools = [{"type": "function", "function": {"name": "get_balance", "parameters": {"type": "object"}}}]
    call = {"id": "c1", "type": "function", "function": {"name": "get_balance", "arguments": '{"account": "main"}'}}
    messages = [{"role": "user", "content": "balance?"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "42 EUR"},
                {"role": "assistant", "content": "You have 42 EUR."}]
    rendered = render_for_training(tokenizer, messages, tools)
    trained = trained_text(tokenizer, rendered)
    # SmolLM2's template has no tool support: calls and tool list are rendered as text (documented fallback)
    call_text = json.dumps({"name": "get_balance", "arguments": {"account": "main"}})
    assert trained == f"<tool_call>\n{call_text}\n</tool_call><|im_end|>You have 42 EUR.<|im_end|>"
    text = tokenizer.decode(rendered.input_ids)
    assert "<tools>" in text and "42 EUR" in text and "42 EUR" not in trained.split("You have")[0]


def test_content_parts_and_developer_role(tokenizer):
    messages = [{"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}]
    text = render_text(tokenizer, messages)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")  # developer acts as system
    assert "a\nb" in text
    assert trained_text(tokenizer, render_for_training(tokenizer, messages)) == "ok<|im_end|>"


def test_conversation_opening_with_the_assistant(tokenizer):
    messages = [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "bye"}]
    rendered = render_for_training(tokenizer, messages)
    assert trained_text(tokenizer, rendered).endswith("bye<|im_end|>")
