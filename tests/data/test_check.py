"""Every rule of `selftune.data.check`, each on a small file written by the test."""

from __future__ import annotations

import json

import pytest

from selftune.data import check
from selftune.data.reader import read_jsonl
from tests.helpers import ANSWER, FILLER, GOOD, SYSTEM, TINY_CONTEXT, USER, write_jsonl


def only(report, code=None):
    """The single error of a report (asserting there is exactly one), as (line, code, field)."""
    assert len(report.errors) == 1, [p.model_dump() for p in report.errors]
    problem = report.errors[0]
    if code:
        assert problem.code == code, problem
    return problem.line, problem.code, problem.field


def check_line(tmp_path, row, **kwargs):
    """Check a file of ten good examples followed by ``row`` (which lands on line 11)."""
    return check(write_jsonl(tmp_path / "f.jsonl", [*FILLER, row]), **kwargs)


def test_valid_chat_file(tmp_path):
    report = check(write_jsonl(tmp_path / "f.jsonl", FILLER))
    assert report.valid and report.purpose == "sft"
    assert (report.examples, report.valid_examples, report.error_count) == (10, 10, 0)


def test_bom_crlf_and_blank_lines_are_fine_and_keep_line_numbers(tmp_path):
    lines = [json.dumps(GOOD)] * 10 + ["", "   ", json.dumps({"messages": []})]
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    report = check(path)
    assert report.examples == 11
    assert only(report) == (13, "empty_value", "messages")


@pytest.mark.parametrize("raw, code", [
    (b"\xff\xfe{}", "invalid_utf8"),
    (b'{"messages": [', "invalid_json"),
    (b'{"messages": NaN}', "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'"text"', "not_an_object"),
])
def test_unreadable_lines(tmp_path, raw, code):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\n".join([json.dumps(GOOD).encode()] * 10 + [raw]) + b"\n")
    assert only(check(path), code)[0] == 11


def test_overlong_line_is_reported_and_skipped(tmp_path):
    path = write_jsonl(tmp_path / "f.jsonl", [GOOD, "x" * 5000, GOOD])
    found = list(read_jsonl(path, max_line_bytes=1000))
    assert [line for line, _ in found] == [1, 2, 3]
    assert found[1][1].code == "line_too_long" and found[2][1] == GOOD


@pytest.mark.parametrize("row, expected", [
    ({}, (None, "missing_field", "messages")),
    ({"messages": []}, (None, "empty_value", "messages")),
    ({"messages": "hi"}, (None, "wrong_type", "messages")),
    ({"messages": [USER, ANSWER], "extra": 1}, (None, "unexpected_field", "extra")),
    ({"messages": [USER, 7]}, (None, "wrong_type", "messages[1]")),
    ({"messages": [{"role": "bot", "content": "x"}, ANSWER]}, (None, "invalid_role", "messages[0].role")),
    ({"messages": [{"content": "x"}, ANSWER]}, (None, "missing_field", "messages[0].role")),
    ({"messages": [{"role": "user"}, ANSWER]}, (None, "missing_field", "messages[0].content")),
    ({"messages": [{"role": "user", "content": 5}, ANSWER]}, (None, "wrong_type", "messages[0].content")),
    ({"messages": [{"role": "user", "content": []}, ANSWER]}, (None, "empty_value", "messages[0].content")),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}, ANSWER]},
     (None, "unsupported_content_part", "messages[0].content[0]")),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}, ANSWER]},
     (None, "missing_field", "messages[0].content[0].text")),
    ({"messages": [{"role": "user", "content": "x", "tool_call_id": "a"}, ANSWER]},
     (None, "unexpected_field", "messages[0].tool_call_id")),
    ({"messages": [USER, {"role": "tool", "content": "x", "tool_call_id": "a", "name": "f"}, ANSWER]},
     (None, "unexpected_field", "messages[1].name")),
    ({"messages": [{**USER, "weight": 1}, ANSWER]}, (None, "weight_not_allowed", "messages[0].weight")),
    ({"messages": [{**SYSTEM, "weight": 0}, USER, ANSWER]}, (None, "weight_not_allowed", "messages[0].weight")),
    ({"messages": [USER, {**ANSWER, "weight": 2}]}, (None, "invalid_weight", "messages[1].weight")),
    ({"messages": [USER, {**ANSWER, "weight": True}]}, (None, "invalid_weight", "messages[1].weight")),
    ({"messages": [USER, {**ANSWER, "weight": 1.0}]}, (None, "invalid_weight", "messages[1].weight")),
    ({"messages": [USER, {**ANSWER, "weight": 0}]}, (None, "no_trained_assistant", "messages")),
    ({"messages": [SYSTEM, USER]}, (None, "no_trained_assistant", "messages")),
    ({"messages": [USER, {"role": "assistant", "content": None}]}, (None, "missing_content", "messages[1].content")),
    ({"messages": [USER, {"role": "assistant", "content": "x", "name": 3}]}, (None, "wrong_type", "messages[1].name")),
])
def test_message_rules(tmp_path, row, expected):
    line, code, field = only(check_line(tmp_path, row))
    assert (line, code, field) == (11, expected[1], expected[2])


def test_valid_variants(tmp_path):
    rows = [
        {"messages": [{"role": "developer", "content": "Be brief."}, USER, ANSWER]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "c"}], "name": "bot"}]},
        {"messages": [USER, {**ANSWER, "weight": 0}, USER, {**ANSWER, "weight": 1}]},
        {"messages": [{"role": "assistant", "content": "Hello! How can I help?"}, USER, ANSWER]},
    ]
    report = check(write_jsonl(tmp_path / "f.jsonl", FILLER + rows))
    assert report.valid, report.errors


TOOLS = [{"type": "function", "function": {"name": "get_balance", "description": "Balance of an account",
                                           "parameters": {"type": "object", "properties": {"account": {"type": "string"}}}}}]


def call(call_id="c1", name="get_balance", arguments='{"account": "main"}'):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_reply(call_id="c1"):
    return {"role": "tool", "tool_call_id": call_id, "content": "42 EUR"}


def test_tool_conversation_is_valid(tmp_path):
    row = {"tools": TOOLS, "parallel_tool_calls": True, "messages": [
        USER, {"role": "assistant", "content": None, "tool_calls": [call("c1"), call("c2")]},
        tool_reply("c1"), tool_reply("c2"), {"role": "assistant", "content": "You have 42 EUR."}]}
    assert check_line(tmp_path, row).valid


@pytest.mark.parametrize("messages, tools, parallel, expected", [
    ([USER, {"role": "assistant", "tool_calls": [call()]}, ANSWER], TOOLS, None,
     ("unanswered_tool_call", "messages[1].tool_calls[0].id")),
    ([USER, tool_reply("zz"), ANSWER], TOOLS, None, ("unexpected_tool_message", "messages[1].tool_call_id")),
    ([USER, {"role": "assistant", "tool_calls": [call("a"), call("a")]}, tool_reply("a"), ANSWER], TOOLS, None,
     ("duplicate_tool_call_id", "messages[1].tool_calls[1].id")),
    ([USER, {"role": "assistant", "tool_calls": [call(name="transfer")]}, tool_reply(), ANSWER], TOOLS, None,
     ("unknown_tool", "messages[1].tool_calls[0].function.name")),
    ([USER, {"role": "assistant", "tool_calls": [call(arguments="{bad")]}, tool_reply(), ANSWER], TOOLS, None,
     ("invalid_tool_arguments", "messages[1].tool_calls[0].function.arguments")),
    ([USER, {"role": "assistant", "tool_calls": [call(arguments="[1]")]}, tool_reply(), ANSWER], TOOLS, None,
     ("invalid_tool_arguments", "messages[1].tool_calls[0].function.arguments")),
    ([USER, {"role": "assistant", "tool_calls": [call("a"), call("b")]}, tool_reply("a"), tool_reply("b"), ANSWER],
     TOOLS, False, ("parallel_tool_calls_disabled", "messages[1].tool_calls")),
    ([USER, {"role": "assistant", "tool_calls": []}, ANSWER], TOOLS, None,
     ("empty_value", "messages[1].tool_calls")),
    ([USER, {"role": "assistant", "tool_calls": [{**call(), "type": "code"}]}, tool_reply(), ANSWER], TOOLS, None,
     ("invalid_value", "messages[1].tool_calls[0].type")),
    ([USER, ANSWER], TOOLS * 2, None, ("duplicate_tool_name", "tools[1].function.name")),
    ([USER, ANSWER], [{"type": "function", "function": {"name": "has space"}}], None,
     ("invalid_value", "tools[0].function.name")),
    ([USER, ANSWER], [{"type": "function", "function": {"name": "f", "parameters": "x"}}], None,
     ("wrong_type", "tools[0].function.parameters")),
    ([USER, ANSWER], TOOLS, "yes", ("wrong_type", "parallel_tool_calls")),
])
def test_tool_rules(tmp_path, messages, tools, parallel, expected):
    row = {"messages": messages, "tools": tools}
    if parallel is not None:
        row["parallel_tool_calls"] = parallel
    _, code, field = only(check_line(tmp_path, row))
    assert (code, field) == expected


def test_every_problem_is_reported_with_its_line(tmp_path):
    rows = [*FILLER, {"messages": [{"role": "bot", "content": 1}, {**USER, "weight": 0}]}, "{oops", GOOD]
    report = check(write_jsonl(tmp_path / "f.jsonl", rows))
    found = {(p.line, p.code, p.field) for p in report.errors}
    assert found == {(11, "invalid_role", "messages[0].role"), (11, "weight_not_allowed", "messages[1].weight"),
                     (12, "invalid_json", None)}
    assert report.lines_with_errors == 2 and report.valid_examples == 11


def test_problems_are_capped_with_a_count_of_the_rest(tmp_path):
    report = check(write_jsonl(tmp_path / "f.jsonl", [*FILLER, *["nope"] * 30]), max_problems=5)
    assert len(report.errors) == 5 and report.errors_not_shown == 25 and report.error_count == 30
    assert report.lines_with_errors == 30


def test_too_few_examples(tmp_path):
    report = check(write_jsonl(tmp_path / "f.jsonl", [GOOD] * 9))
    assert only(report) == (None, "too_few_examples", None)
    assert "9 examples" in report.errors[0].message


def test_empty_file(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text("\n\n")
    assert only(check(path))[1] == "too_few_examples"


def test_length_warning_names_count_and_lines(tmp_path, tiny_model):
    long = {"messages": [USER, {"role": "assistant", "content": "word " * (TINY_CONTEXT + 10)}]}
    report = check(write_jsonl(tmp_path / "f.jsonl", [*FILLER, long, GOOD, long]), model=str(tiny_model))
    assert report.valid
    (warning,) = report.warnings
    assert warning.code == "too_long" and warning.severity == "warning"
    assert "2 examples" in warning.message and "lines 11, 13" in warning.message


def test_length_check_does_not_flag_examples_that_fit(tmp_path, tiny_model):
    fits = {"messages": [USER, {"role": "assistant", "content": "word " * (TINY_CONTEXT // 4)}]}
    assert not check(write_jsonl(tmp_path / "f.jsonl", [*FILLER, fits]), model=str(tiny_model)).warnings


# Preference (DPO) files

PROMPT = {"messages": [USER]}
PREFERRED = [{"role": "assistant", "content": "lost_or_stolen_card"}]
WORSE = [{"role": "assistant", "content": "card_arrival"}]
PAIR = {"input": PROMPT, "preferred_output": PREFERRED, "non_preferred_output": WORSE}


def test_valid_preference_file_is_detected(tmp_path):
    report = check(write_jsonl(tmp_path / "f.jsonl", [PAIR] * 10))
    assert report.valid and report.purpose == "dpo"


@pytest.mark.parametrize("change, expected", [
    ({"preferred_output": []}, ("wrong_output_count", "preferred_output")),
    ({"non_preferred_output": WORSE * 2}, ("wrong_output_count", "non_preferred_output")),
    ({"preferred_output": [USER]}, ("invalid_value", "preferred_output[0].role")),
    ({"preferred_output": [{**PREFERRED[0], "weight": 1}]}, ("weight_not_allowed", "preferred_output[0].weight")),
    ({"non_preferred_output": PREFERRED}, ("identical_outputs", "non_preferred_output")),
    ({"input": {"messages": [USER, PREFERRED[0]]}}, ("input_must_end_with_user", "input.messages[1].role")),
    ({"input": {"messages": []}}, ("empty_value", "input.messages")),
    ({"input": {}}, ("missing_field", "input.messages")),
    ({"input": {"messages": [{"role": "bot", "content": "x"}]}}, ("invalid_role", "input.messages[0].role")),
    ({"non_preferred_output": None}, ("wrong_type", "non_preferred_output")),
])
def test_preference_rules(tmp_path, change, expected):
    _, code, field = only(check_line_dpo(tmp_path, {**PAIR, **change}))
    assert (code, field) == expected


def check_line_dpo(tmp_path, row):
    return check(write_jsonl(tmp_path / "f.jsonl", [PAIR] * 10 + [row]))


def test_missing_preference_key(tmp_path):
    row = {k: v for k, v in PAIR.items() if k != "non_preferred_output"}
    assert only(check_line_dpo(tmp_path, row)) == (11, "missing_field", "non_preferred_output")


def test_formats_must_not_be_mixed(tmp_path):
    assert only(check_line(tmp_path, PAIR)) == (11, "wrong_format", None)
    assert only(check_line_dpo(tmp_path, GOOD)) == (11, "wrong_format", None)


def test_explicit_purpose_overrides_detection(tmp_path):
    report = check(write_jsonl(tmp_path / "f.jsonl", [PAIR] * 10), purpose="sft")
    assert report.purpose == "sft" and report.error_count == 10
    assert {p.code for p in report.errors} == {"wrong_format"}


def test_banking77_files_are_valid(banking77):
    for name in ("train_1k.jsonl", "valid_200.jsonl", "test.jsonl"):
        report = check(banking77 / name)
        assert report.valid and not report.warnings, (name, report.errors[:3])


def test_lone_surrogate_escape_is_invalid_unicode(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text("\n".join([json.dumps(GOOD)] * 10 + [
        '{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "x"}]}',
        '{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}, {"role": "assistant", "content": "x"}]}',
    ]) + "\n")
    assert only(check(path)) == (11, "invalid_unicode", None)  # a proper pair (line 12, an emoji) is fine


@pytest.mark.parametrize("answer", ["", "  ", [{"type": "text", "text": ""}]])
def test_empty_trained_answer_is_a_warning(tmp_path, answer):
    report = check_line(tmp_path, {"messages": [USER, {"role": "assistant", "content": answer}]})
    assert report.valid
    assert [(w.line, w.code, w.field) for w in report.warnings] == [(11, "empty_answer", "messages[1].content")]


def test_empty_answer_with_weight_zero_is_not_flagged(tmp_path):
    row = {"messages": [USER, {"role": "assistant", "content": "", "weight": 0}, USER, ANSWER]}
    assert not check_line(tmp_path, row).warnings


def test_non_string_role_is_shown_as_json(tmp_path):
    report = check_line(tmp_path, {"messages": [{"role": None, "content": "x"}, ANSWER]})
    assert report.errors[0].message.startswith("role null is not one of")
