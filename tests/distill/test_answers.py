"""The one answer filter (teacher answers and stored completions) and the one dedupe."""

from __future__ import annotations

from collections import Counter

import pytest

from selftune.distill.answers import Answer, drop_duplicates, rejection


@pytest.mark.parametrize(("answer", "keep_truncated", "reason"), [
    (Answer(answer="Your card arrives in 3 days."), False, None),
    (Answer(answer="I'm sorry, I can't help with that."), False, "refused"),
    (Answer(answer="Sure", refusal="no"), False, "refused"),
    (Answer(answer="", tool_calls=True), False, "tool_calls"),
    (Answer(answer="  \n"), False, "empty"),
    (Answer(answer="Your card arri", finish_reason="length"), False, "truncated"),
    (Answer(answer="Your card arri", finish_reason="length"), True, None),
])
def test_rejection(answer, keep_truncated, reason):
    assert rejection(answer, keep_truncated) == reason


def test_drop_duplicates_keeps_the_first_and_counts_the_rest():
    drops = Counter()
    items = [{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 2}, {"a": 1, "b": 2}]
    assert drop_duplicates(items, drops, "duplicate") == [{"a": 1, "b": 2}, {"a": 2}]
    assert drops == {"duplicate": 2}
    assert drop_duplicates([(1, "x"), (2, "x")], drops, "same_text", key=lambda p: p[1]) == [(1, "x")]
    assert drops["same_text"] == 1
