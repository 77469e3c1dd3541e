"""Token statistics, the hosted auto-epoch rule, and the measured time estimate."""

from __future__ import annotations

import pytest

from selftune.data.calibration import cached_speed, training_speed
from selftune.data.estimate import auto_epochs, billed_tokens
from selftune.data.stats import stats
from selftune.errors import SelftuneError
from selftune.models.chat_template import render_for_training
from selftune.models.tokenizer import load_tokenizer
from tests.helpers import write_jsonl


@pytest.mark.parametrize("examples, epochs", [
    (10, 10), (20, 5), (33, 3), (34, 3), (1_000, 3), (8_333, 3), (8_334, 2), (10_003, 2),
    (25_000, 1), (100_000, 1), (1, 25), (3, 25),
])
def test_auto_epochs_follows_the_hosted_rule(examples, epochs):
    assert auto_epochs(examples) == epochs


def test_billed_tokens_cap_each_example():
    assert billed_tokens([10, 20, 500], epochs=3, max_tokens_per_example=100) == 3 * (10 + 20 + 100)


def rows(n):
    return [{"messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": f"message {i} " * (8 * i + 1)},
                          {"role": "assistant", "content": f"label_{i % 3}"}]} for i in range(n)]


def test_stats_measure_with_the_models_tokenizer(tmp_path, tiny_model):
    data = rows(12)
    path = write_jsonl(tmp_path / "f.jsonl", data)
    result = stats(path, str(tiny_model), measure_speed=False)

    tokenizer = load_tokenizer(str(tiny_model))
    rendered = [render_for_training(tokenizer, r["messages"]) for r in data]
    lengths = [len(r.input_ids) for r in rendered]
    assert result.examples == 12 and result.purpose == "sft"
    assert result.total_tokens == sum(lengths)
    assert result.trained_tokens == sum(r.n_trained for r in rendered)
    assert (result.tokens_per_example.min, result.tokens_per_example.max) == (min(lengths), max(lengths))
    assert result.tokens_per_example.mean == pytest.approx(sum(lengths) / 12)
    assert result.over_context == sum(n > 256 for n in lengths) > 0
    assert result.estimate.n_epochs == 8  # 100 // 12
    assert result.estimate.billed_tokens == 8 * sum(min(n, 256) for n in lengths)
    assert result.estimate.seconds is None


def test_stats_of_a_preference_file_count_both_answers(tmp_path, tiny_model):
    pair = {"input": {"messages": [{"role": "user", "content": "hi"}]},
            "preferred_output": [{"role": "assistant", "content": "hello there"}],
            "non_preferred_output": [{"role": "assistant", "content": "go away"}]}
    result = stats(write_jsonl(tmp_path / "f.jsonl", [pair] * 10), str(tiny_model), measure_speed=False)
    tokenizer = load_tokenizer(str(tiny_model))
    answers = len(tokenizer("hello there<|im_end|>")["input_ids"]) + len(tokenizer("go away<|im_end|>")["input_ids"])
    assert result.purpose == "dpo" and result.trained_tokens == 10 * answers
    # the trainer steps over both conversations of a pair; billing counts the longer one
    prompt = render_for_training(tokenizer, pair["input"]["messages"] + pair["preferred_output"])
    other = render_for_training(tokenizer, pair["input"]["messages"] + pair["non_preferred_output"])
    assert result.estimate.training_tokens == 10 * 10 * (len(prompt.input_ids) + len(other.input_ids))
    assert result.estimate.billed_tokens == 10 * 10 * max(len(prompt.input_ids), len(other.input_ids))


def test_stats_refuse_an_invalid_file(tmp_path, tiny_model):
    path = write_jsonl(tmp_path / "f.jsonl", [*rows(10), {"messages": []}])
    with pytest.raises(SelftuneError, match=r"f.jsonl:11: messages: empty_value"):
        stats(path, str(tiny_model), measure_speed=False)


def test_time_estimate_is_measured_once_and_cached(tmp_path, tiny_model, selftune_home):
    path = write_jsonl(tmp_path / "f.jsonl", rows(12))  # some over the tiny context: not sampled
    result = stats(path, str(tiny_model))
    first = cached_speed(str(tiny_model))
    assert first.tokens_per_second > 0 and "cpus" in first.machine and first.source == "measured"
    cached = list((selftune_home / "calibration").glob("*.json"))
    assert len(cached) == 1
    assert result.estimate.tokens_per_second == first.tokens_per_second
    assert result.estimate.training_tokens == result.estimate.billed_tokens  # a chat file: the same tokens
    assert result.estimate.seconds == pytest.approx(result.estimate.training_tokens / first.tokens_per_second)
    assert result.estimate.speed_source == "measured"
    assert training_speed(str(tiny_model), path, 12) == first  # same measurement, read back

    cached[0].write_text("{corrupt")
    assert stats(path, str(tiny_model)).estimate.tokens_per_second > 0  # re-measured, not trusted


def test_no_time_when_no_example_fits_the_context(tmp_path, tiny_model):
    long = [{"messages": [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"}]}]
    result = stats(write_jsonl(tmp_path / "f.jsonl", long * 3), str(tiny_model))
    assert result.over_context == 3 and result.estimate.seconds is None
