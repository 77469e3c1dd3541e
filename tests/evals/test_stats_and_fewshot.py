"""Bootstrap intervals on known cases; few-shot prompts built from training data only."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from selftune.errors import SelftuneError
from selftune.evals.config import EvalConfig, ModelEndpoint
from selftune.evals.examples import EvalExample, load_examples
from selftune.evals.fewshot import FewShot, label_set
from selftune.evals.stats import bootstrap_ci, percentile
from tests.helpers import write_jsonl


def test_bootstrap_interval_matches_the_normal_approximation():
    scores = [1.0] * 200 + [0.0] * 200  # accuracy 0.5 on 400 examples
    low, high = bootstrap_ci(scores)
    half_width = 1.96 * math.sqrt(0.25 / 400)  # 0.049
    assert low == pytest.approx(0.5 - half_width, abs=0.01) and high == pytest.approx(0.5 + half_width, abs=0.01)
    assert bootstrap_ci([1.0] * 50) == (1.0, 1.0)
    assert bootstrap_ci(scores, seed=3) == bootstrap_ci(scores, seed=3)
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([5], 95) == 5


def example(user: str, answer: str, system: str = "Classify.") -> EvalExample:
    return EvalExample(1, [{"role": "system", "content": system}, {"role": "user", "content": user}], answer)


def test_label_set_only_for_classification_like_answers():
    assert label_set(["a", "b", "a", "b"]) == ["a", "b"]
    assert label_set(["a", "b", "c"]) is None  # each answer once: not labels
    assert label_set(["a long\nanswer", "a long\nanswer", "x", "x"]) is None


def test_few_shot_prompt_lists_labels_and_spreads_examples_over_classes():
    train = [example(f"q{i}", f"label{i % 5}") for i in range(50)]
    few = FewShot.build(train, 5, seed=1)
    assert few.labels == [f"label{i}" for i in range(5)]
    assert {shot.reference for shot in few.shots} == set(few.labels)  # one per class
    assert FewShot.build(train, 5, seed=1).shots == few.shots  # seeded
    messages = few.messages(example("new question", "label2", system="Ignored: the few-shot prompt has its own"))
    assert messages[0]["role"] == "system" and "Classify." in messages[0]["content"]
    assert "exactly one of these 5 labels:\nlabel0\nlabel1" in messages[0]["content"]
    assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * 5 + ["user"]
    assert messages[-1]["content"] == "new question"
    assert len(FewShot.build(train, 12, seed=0).shots) == 12  # more shots than classes: round robin


def test_examples_need_a_final_answer_and_sample_with_a_seed(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(30)]
    path = write_jsonl(tmp_path / "test.jsonl", rows)
    sample = load_examples(path, limit=10, seed=0)
    assert len(sample) == 10 and sample == load_examples(path, limit=10, seed=0)
    assert [e.line for e in sample] == sorted(e.line for e in sample)
    unanswered = {"messages": [*rows[0]["messages"], {"role": "user", "content": "and then?"}]}
    bad = write_jsonl(tmp_path / "bad.jsonl", rows[:2] + [unanswered])
    with pytest.raises(SelftuneError, match=r"bad.jsonl:3: messages: the last message must be an assistant"):
        load_examples(bad)


def test_few_shot_examples_never_come_from_the_test_file(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text("")
    with pytest.raises(ValidationError, match="--few-shot-from is the test file"):
        EvalConfig(data=path, models=["m"], few_shot=3, few_shot_from=path)
    with pytest.raises(ValidationError, match="--few-shot needs --few-shot-from"):
        EvalConfig(data=path, models=["m"], few_shot=3)
    with pytest.raises(ValidationError, match="name at least one --model"):
        EvalConfig(data=path, models=[])
    with pytest.raises(ValidationError, match="concurrency"):
        EvalConfig(data=path, models=["m"], concurrency=0)


def test_a_bare_model_id_is_reached_through_the_runs_endpoint(tmp_path):
    config = EvalConfig(data=tmp_path / "test.jsonl", models=["tiny", {"model": "old", "base_url": "http://x/v1",
                                                                        "api_key": "k"}])
    assert config.models == [ModelEndpoint(model="tiny"), ModelEndpoint(model="old", base_url="http://x/v1",
                                                                         api_key="k")]
    assert config.needs_run_endpoint  # tiny has no endpoint of its own
    alone = EvalConfig(data=tmp_path / "test.jsonl", models=[{"model": "old", "base_url": "http://x/v1"}])
    assert not alone.needs_run_endpoint
    judged = EvalConfig(data=tmp_path / "test.jsonl", models=[{"model": "old", "base_url": "http://x/v1"}],
                        graders=["judge:big"])
    assert judged.needs_run_endpoint  # the judge is reached through the run's endpoint
