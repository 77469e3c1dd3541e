"""An unusable training file says which file, line and field it is about, beside the message a user reads."""

from __future__ import annotations

import pytest

from selftune.models.chat_template import render_for_training
from selftune.models.tokenizer import load_tokenizer
from selftune.train.dataset import InvalidTrainingFile, load_training_file
from tests.helpers import TINY_CONTEXT, write_jsonl

GOOD = {"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "ok"}]}


@pytest.fixture
def tokenizer(tiny_model):
    return load_tokenizer(str(tiny_model))


def refusal(path, tokenizer, max_length=TINY_CONTEXT) -> InvalidTrainingFile:
    with pytest.raises(InvalidTrainingFile) as info:
        load_training_file(path, tokenizer, "sft", max_length)
    return info.value


def test_a_failed_check_names_its_first_problem(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "broken.jsonl", [GOOD] * 10 + [{"messages": []}, GOOD])
    error = refusal(path, tokenizer)
    assert (error.path, error.line, error.field) == (path, 11, "messages")
    assert "broken.jsonl:11: messages: empty_value" in str(error)


def test_a_problem_with_the_whole_file_has_no_line(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "few.jsonl", [GOOD] * 9)
    error = refusal(path, tokenizer)
    assert (error.path, error.line, error.field) == (path, None, None)


def test_an_untrainable_example_names_its_line(tmp_path, tokenizer):
    long_prompt = {"messages": [{"role": "user", "content": "word " * 80}, {"role": "assistant", "content": "ok"}]}
    max_length = len(render_for_training(tokenizer, GOOD["messages"]).input_ids) + 5
    path = write_jsonl(tmp_path / "cut.jsonl", [GOOD] * 10 + [long_prompt, GOOD, long_prompt])
    error = refusal(path, tokenizer, max_length)
    assert (error.path, error.line) == (path, 11)
