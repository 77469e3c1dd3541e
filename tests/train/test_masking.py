"""Which tokens a training file trains: assistant answers with their end-of-turn token, nothing else."""

from __future__ import annotations

import pytest

from selftune.models.chat_template import render_for_training
from selftune.models.tokenizer import load_tokenizer
from selftune.train.dataset import InvalidTrainingFile, load_training_file
from tests.helpers import TINY_CONTEXT, write_jsonl

SYSTEM = {"role": "system", "content": "SYSTEMTEXT classify the message."}
USER = {"role": "user", "content": "USERTEXT I lost my card"}
CALL = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"card": "main"}'}}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture
def tokenizer(tiny_model):
    return load_tokenizer(str(tiny_model))


def trained_spans(tokenizer, sequence) -> list[str]:
    """The text of each run of consecutive trained tokens."""
    spans, current = [], []
    for token, trained in zip(sequence.input_ids.tolist(), sequence.trained.tolist(), strict=True):
        if trained:
            current.append(token)
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    if current:
        spans.append(tokenizer.decode(current))
    return spans


def load(tmp_path, tokenizer, rows, max_length=TINY_CONTEXT, name="train.jsonl"):
    return load_training_file(write_jsonl(tmp_path / name, rows), tokenizer, "sft", max_length)


def test_only_trained_assistant_answers_and_their_end_of_turn_are_trained(tmp_path, tokenizer):
    """weight 0 answers, system, user and tool messages are context; each trained answer ends with <|im_end|>."""
    example = {"tools": TOOLS, "messages": [
        SYSTEM, USER,
        {"role": "assistant", "content": "WRONGANSWER", "weight": 0},
        {"role": "user", "content": "USERTEXT again"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": "TOOLTEXT card is blocked"},
        {"role": "assistant", "content": "RIGHTANSWER blocked"},
    ]}
    data = load(tmp_path, tokenizer, [example] * 10)
    assert len(data) == 10 and data.lines == list(range(1, 11)) and data.truncated == 0
    sequence = data.sequences[0]
    spans = trained_spans(tokenizer, sequence)
    assert len(spans) == 2
    assert spans[0].startswith("<tool_call>") and spans[0].endswith("</tool_call><|im_end|>")
    assert spans[1] == "RIGHTANSWER blocked<|im_end|>"
    trained_text = "".join(spans)
    for context in ("SYSTEMTEXT", "USERTEXT", "TOOLTEXT", "WRONGANSWER", "<|im_start|>"):
        assert context not in trained_text
        assert context in tokenizer.decode(sequence.input_ids)
    # every end-of-turn token closing a trained answer is trained; the others (after system, user, tool,
    # and the weight-0 answer) are not
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ends = (sequence.input_ids == im_end).nonzero().squeeze(1).tolist()
    assert [bool(sequence.trained[i]) for i in ends] == [False, False, False, False, True, False, True]
    assert data.n_trained == 10 * int(sequence.trained.sum())


def test_sequences_are_the_chat_template_rendering(tmp_path, tokenizer):
    """The loader must train on exactly what the template renders (the same ids and mask)."""
    rows = [{"messages": [USER, {"role": "assistant", "content": f"label_{i}"}]} for i in range(10)]
    data = load(tmp_path, tokenizer, rows)
    for row, sequence in zip(rows, data.sequences, strict=True):
        rendered = render_for_training(tokenizer, row["messages"])
        assert sequence.input_ids.tolist() == rendered.input_ids
        assert sequence.trained.tolist() == rendered.trained
    assert trained_spans(tokenizer, data.sequences[3]) == ["label_3<|im_end|>"]


def test_an_over_long_example_is_truncated_and_counted(tmp_path, tokenizer):
    """Cut to max_length, keeping its first answer trained; the count is what the run warns about."""
    short = {"messages": [USER, {"role": "assistant", "content": "first"}]}
    long = {"messages": [USER, {"role": "assistant", "content": "first"},
                         {"role": "user", "content": "word " * 60}, {"role": "assistant", "content": "second"}]}
    first_answer_end = len(render_for_training(tokenizer, short["messages"]).input_ids)
    max_length = first_answer_end + 10
    full = render_for_training(tokenizer, long["messages"])
    assert len(full.input_ids) > max_length

    data = load(tmp_path, tokenizer, [short] * 8 + [long] * 3, max_length=max_length)
    assert data.truncated == 3 and len(data) == 11
    for sequence in data.sequences[8:]:
        assert len(sequence) == max_length
        assert sequence.input_ids.tolist() == full.input_ids[:max_length]
        assert sequence.trained.tolist() == full.trained[:max_length]
        assert trained_spans(tokenizer, sequence) == ["first<|im_end|>"]
    assert all(len(s) < max_length for s in data.sequences[:8])


def test_truncation_that_leaves_nothing_to_train_names_the_line(tmp_path, tokenizer):
    """An example whose answer is cut away entirely can't be trained: refuse the file, naming its line."""
    good = {"messages": [USER, {"role": "assistant", "content": "ok"}]}
    long_prompt = {"messages": [{"role": "user", "content": "word " * 80}, {"role": "assistant", "content": "ok"}]}
    max_length = len(render_for_training(tokenizer, good["messages"]).input_ids) + 5
    path = write_jsonl(tmp_path / "cut.jsonl", [good] * 10 + [long_prompt, good, long_prompt])
    with pytest.raises(InvalidTrainingFile, match=r"cut\.jsonl.*2 example\(s\).*lines 11, 13"):
        load_training_file(path, tokenizer, "sft", max_length)


def test_an_invalid_file_is_refused_with_file_and_line(tmp_path, tokenizer):
    """Stage 1's check runs first, and its report (file:line) is the error the user sees."""
    good = {"messages": [USER, {"role": "assistant", "content": "ok"}]}
    path = write_jsonl(tmp_path / "broken.jsonl", [good] * 10 + [{"messages": []}, good])
    with pytest.raises(InvalidTrainingFile, match=r"broken\.jsonl:11: messages: empty_value"):
        load_training_file(path, tokenizer, "sft", TINY_CONTEXT)
    with pytest.raises(InvalidTrainingFile, match=r"few\.jsonl.*too_few_examples"):
        load(tmp_path, tokenizer, [good] * 9, name="few.jsonl")


def test_preference_pairs_train_only_their_answers(tmp_path, tokenizer):
    """A DPO pair is the same prompt twice, with only the preferred / rejected answer trained."""
    pair = {"input": {"messages": [SYSTEM, USER]},
            "preferred_output": [{"role": "assistant", "content": "GOOD answer"}],
            "non_preferred_output": [{"role": "assistant", "content": "BAD answer"}]}
    data = load_training_file(write_jsonl(tmp_path / "pref.jsonl", [pair] * 10), tokenizer, "dpo", TINY_CONTEXT)
    assert len(data) == 10 and data.purpose == "dpo"
    chosen, rejected = data.pairs[0].chosen, data.pairs[0].rejected
    assert trained_spans(tokenizer, chosen) == ["GOOD answer<|im_end|>"]
    assert trained_spans(tokenizer, rejected) == ["BAD answer<|im_end|>"]
    first = int(chosen.trained.nonzero()[0, 0])
    assert chosen.input_ids[:first].tolist() == rejected.input_ids[:first].tolist()
    assert data.example(0) is chosen
