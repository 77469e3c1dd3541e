"""``selftune distill`` against live teachers: a misbehaving one (retries, rate limits, refusals,
concurrency, a kill mid-run) and selftune itself (answers, and stored completions)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from selftune.data.check import check
from selftune.distill import DistillConfig, distill
from selftune.distill.results import TokenCounts
from selftune.evals.prices import TokenPrice
from tests.distill.teacher import FlakyTeacher
from tests.helpers import write_jsonl


@pytest.fixture
def teacher():
    server = FlakyTeacher().start()
    yield server
    server.stop()


@pytest.fixture
def slow_teacher():
    """Each answer takes 0.2 s: long enough to see requests overlap, or to kill a run mid-way."""
    server = FlakyTeacher(delay=0.2).start()
    yield server
    server.stop()


def test_retries_filters_and_a_valid_training_file(teacher, tmp_path):
    prompts = tmp_path / "prompts.txt"
    more = [f"question {i}" for i in range(7)]
    prompts.write_text("where is my card\nfail-twice card\nrate-limit card\nrefuse card\nempty card\nlong card\n"
                       "where is my card\nexchange rate\n" + "\n".join(more) + "\n")
    out = tmp_path / "train.jsonl"
    summary = distill(DistillConfig(teacher_base_url=teacher.url, teacher_model="big", prompts=prompts, out=out,
                                    system="You are a bank assistant.", concurrency=3, max_retries=3,
                                    prices=[TokenPrice(name="big", input_per_million=2.0, output_per_million=8.0)]))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["messages"][1]["content"] for r in rows] == ["where is my card", "fail-twice card", "rate-limit card",
                                                           "exchange rate", *more]
    assert rows[1]["messages"] == [{"role": "system", "content": "You are a bank assistant."},
                                   {"role": "user", "content": "fail-twice card"},
                                   {"role": "assistant", "content": "answer to fail-twice card"}]
    assert check(out).valid and summary.check == []
    assert summary.dropped == {"duplicate_prompt": 1, "empty": 1, "refused": 1, "truncated": 1}
    assert summary.kept == 11 and summary.prompts == 15
    assert teacher.attempts["fail-twice card"] == 3 and teacher.attempts["rate-limit card"] == 2
    assert summary.requests_this_run == 14 and summary.failed_requests_this_run == 0
    assert summary.teacher_tokens_this_run == TokenCounts(prompt=140, completion=70)
    assert summary.teacher_cost_this_run["big"] == pytest.approx((140 * 2 + 70 * 8) / 1e6)
    assert json.loads(out.with_suffix(".summary.json").read_text()) == summary.model_dump()

    again = distill(DistillConfig(teacher_base_url=teacher.url, teacher_model="big", prompts=prompts, out=out,
                                  system="You are a bank assistant."))
    assert again.requests_this_run == 0 and again.answers_reused_from_cache == 14  # nothing paid twice
    assert sum(teacher.answered.values()) == 14


def test_requests_run_concurrently_and_failures_are_not_cached(slow_teacher, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"question {i}" for i in range(8)) + "\nfail-twice x\n")
    out = tmp_path / "train.jsonl"
    summary = distill(DistillConfig(teacher_base_url=slow_teacher.url, teacher_model="big", prompts=prompts,
                                    out=out, concurrency=4, max_retries=0))
    assert slow_teacher.max_in_flight == 4  # four requests were in flight at once
    assert summary.failed_requests_this_run == 1 and summary.dropped == {"teacher_error": 1}
    again = distill(DistillConfig(teacher_base_url=slow_teacher.url, teacher_model="big", prompts=prompts,
                                  out=out, max_retries=2))
    assert again.requests_this_run == 1 and again.kept == 9  # only the failed prompt is asked again


def test_best_of_k_by_a_grader_and_min_score(teacher, tmp_path):
    rows = [{"messages": [{"role": "user", "content": "card"}, {"role": "assistant", "content": "answer to card"}]},
            {"messages": [{"role": "user", "content": "fee"}, {"role": "assistant", "content": "something else"}]}]
    out = tmp_path / "train.jsonl"
    summary = distill(DistillConfig(teacher_base_url=teacher.url, teacher_model="big",
                                    prompts=write_jsonl(tmp_path / "prompts.jsonl", rows), out=out, samples=3,
                                    graders=["exact"], min_score=1.0))
    assert teacher.attempts["card"] == 3  # three samples each
    assert summary.kept == 1 and summary.dropped == {"below_min_score": 1}
    assert "too_few_examples" in summary.check[0]  # written, with the reason it can't train a job yet
    assert json.loads(out.read_text())["messages"][-1]["content"] == "answer to card"


def test_a_killed_run_resumes_without_paying_twice(slow_teacher, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"question {i}" for i in range(30)) + "\n")
    out = tmp_path / "train.jsonl"
    cache = tmp_path / "train.cache.jsonl"
    command = [sys.executable, "-m", "selftune.cli", "distill", "--prompts", str(prompts), "--out", str(out),
               "--teacher-base-url", slow_teacher.url, "--teacher-model", "big", "--concurrency", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OPENAI_API_KEY": "k"})
    deadline = time.time() + 60
    while time.time() < deadline and (not cache.is_file() or len(cache.read_text().splitlines()) < 6):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()
    answered_before = sum(slow_teacher.answered.values())
    assert 6 <= answered_before < 30
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OPENAI_API_KEY": "k"})
    assert result.returncode == 0, result.stderr
    assert "30 examples from 30 prompts" in result.stdout
    # every prompt answered once, except those in flight at the kill (at most the 2 concurrent ones)
    assert sum(slow_teacher.answered.values()) <= 30 + 2
    assert all(n <= 2 for n in slow_teacher.answered.values())
    assert len(out.read_text().splitlines()) == 30


def test_bad_settings_are_refused(teacher, tmp_path):
    from pydantic import ValidationError

    from selftune.errors import SelftuneError

    prompts = tmp_path / "p.txt"
    prompts.write_text("refuse\n")
    with pytest.raises(SelftuneError, match="no answer was kept"):
        distill(DistillConfig(teacher_base_url=teacher.url, teacher_model="big", prompts=prompts,
                              out=tmp_path / "o.jsonl"))
    with pytest.raises(ValidationError, match="--min-score needs a --grader"):
        distill(DistillConfig(teacher_base_url=teacher.url, teacher_model="big", prompts=prompts,
                              out=tmp_path / "o.jsonl", min_score=0.5))
