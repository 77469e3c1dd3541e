"""Agreement between two models' answers: JSON by value, text after normalising."""

import math

import pytest

from selftune.evals.agreement import agreement, same_answer


@pytest.mark.parametrize(("a", "b", "same"), [
    ("card_arrival", "Card_Arrival.", True),  # case and surrounding punctuation don't count
    ("card arrival", "card_arrival", False),
    ('{"a": 1, "b": [2]}', '{"b":[2],"a":1}', True),  # JSON: order and spacing don't count
    ('{"a": 1}', '{"a": 1.5}', False),
    ('{"a": 1}', "a: 1", False),  # one side not JSON: compared as text
    ("", "", True),
])
def test_same_answer(a, b, same):
    assert same_answer(a, b) is same


def test_agreement_share_and_interval():
    share, (low, high) = agreement(["x", "y", "z", "w"], ["x", "y", "z", "nope"])
    assert share == 0.75
    assert low <= share <= high and 0 <= low < high <= 1
    assert agreement(["x"] * 5, ["x"] * 5)[1] == (1.0, 1.0)
    assert math.isnan(agreement([], [])[0])
    with pytest.raises(ValueError, match="same examples"):
        agreement(["x"], [])
