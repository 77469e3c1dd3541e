"""split_file: seeded, exact, stratified, byte-preserving, and careful with existing files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from selftune.data import check
from selftune.data.split import split_file
from selftune.errors import SelftuneError


def chat(user: str, answer, *, parts: bool = False) -> str:
    content = [{"type": "text", "text": answer}] if parts else answer
    return json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": content}]})


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def examples(tmp_path: Path, n: int = 20) -> Path:
    return write_lines(tmp_path / "data.jsonl", [chat(f"question {i}", f"answer {i}") for i in range(n)])


def split(tmp_path: Path, src: Path, **kw):
    return split_file(src, train_out=tmp_path / "train.jsonl", valid_out=tmp_path / "valid.jsonl", **kw)


def users(path: Path) -> list[str]:
    return [json.loads(line)["messages"][0]["content"] for line in path.read_text(encoding="utf-8").splitlines()]


def answers(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        value = json.loads(line)
        content = value["messages"][-1]["content"] if "messages" in value else value["preferred_output"][0]["content"]
        out.append(content if isinstance(content, str) else content[0]["text"])
    return out


# --- sizes, seeds -------------------------------------------------------------------------


def test_fraction_gives_exact_sizes_and_a_partition(tmp_path):
    src = examples(tmp_path, 20)
    summary = split(tmp_path, src, valid_fraction=0.25)
    assert (summary.train, summary.valid, summary.strata) == (15, 5, None)
    train, valid = users(tmp_path / "train.jsonl"), users(tmp_path / "valid.jsonl")
    assert len(valid) == 5 and len(train) == 15
    assert sorted(train + valid) == sorted(f"question {i}" for i in range(20))
    assert summary.train_path == str(tmp_path / "train.jsonl")


def test_lines_keep_their_order(tmp_path):
    split(tmp_path, examples(tmp_path, 20), valid_size=7)
    train = [int(u.split()[1]) for u in users(tmp_path / "train.jsonl")]
    assert train == sorted(train)


def test_valid_size(tmp_path):
    summary = split(tmp_path, examples(tmp_path, 20), valid_size=3)
    assert (summary.train, summary.valid) == (17, 3)


def test_same_seed_same_split_other_seed_other_split(tmp_path):
    src = examples(tmp_path, 50)
    split(tmp_path, src, valid_fraction=0.2, seed=7)
    first = users(tmp_path / "valid.jsonl")
    split(tmp_path, src, valid_fraction=0.2, seed=7, force=True)
    assert users(tmp_path / "valid.jsonl") == first
    split(tmp_path, src, valid_fraction=0.2, seed=8, force=True)
    assert users(tmp_path / "valid.jsonl") != first


@pytest.mark.parametrize("kw, message", [
    ({}, "exactly one"),
    ({"valid_fraction": 0.1, "valid_size": 2}, "exactly one"),
    ({"valid_fraction": 0.0}, "between 0 and 1"),
    ({"valid_fraction": 1.0}, "between 0 and 1"),
    ({"valid_fraction": float("nan")}, "between 0 and 1"),
    ({"valid_size": 0}, "at least 1"),
    ({"valid_size": 20}, "nothing to train on"),
    ({"valid_fraction": 0.01}, "leaving one part empty"),
    ({"valid_fraction": 0.99}, "leaving one part empty"),
])
def test_bad_sizes_are_refused(tmp_path, kw, message):
    with pytest.raises(SelftuneError, match=message):
        split(tmp_path, examples(tmp_path, 20), **kw)
    assert not (tmp_path / "train.jsonl").exists() and not (tmp_path / "valid.jsonl").exists()


# --- stratification -------------------------------------------------------------------------


def test_stratified_keeps_each_label_share(tmp_path):
    lines = [chat(f"text {i}", label) for i in range(20) for label in ("positive", "negative", "neutral")]
    src = write_lines(tmp_path / "data.jsonl", lines)
    for seed in range(5):
        summary = split(tmp_path, src, valid_fraction=0.25, stratify=True, seed=seed, force=True)
        assert (summary.train, summary.valid, summary.strata) == (45, 15, 3)
        assert Counter(answers(tmp_path / "valid.jsonl")) == {"positive": 5, "negative": 5, "neutral": 5}
        assert Counter(answers(tmp_path / "train.jsonl")) == {"positive": 15, "negative": 15, "neutral": 15}


def test_stratified_total_is_exact_with_uneven_strata(tmp_path):
    labels = ["a"] * 7 + ["b"] * 5 + ["c"] * 3
    src = write_lines(tmp_path / "data.jsonl", [chat(f"t{i}", label) for i, label in enumerate(labels)])
    summary = split(tmp_path, src, valid_size=4, stratify=True)
    assert summary.valid == 4 and summary.train == 11
    valid = Counter(answers(tmp_path / "valid.jsonl"))
    assert valid["a"] == 2 and valid["b"] in (1, 2) and valid["c"] in (0, 1)  # 1.87, 1.33, 0.8 of 4


def test_stratified_singletons_go_to_train(tmp_path):
    lines = [chat(f"t{i}", label) for i in range(10) for label in ("a", "b")]
    lines += [chat("lonely", "only once"), chat("alone", "also once")]
    src = write_lines(tmp_path / "data.jsonl", lines)
    for seed in range(10):
        summary = split(tmp_path, src, valid_fraction=0.5, stratify=True, seed=seed, force=True)
        assert summary.valid == 11 and summary.strata == 4
        train = answers(tmp_path / "train.jsonl")
        assert "only once" in train and "also once" in train
        assert {"a", "b"} <= set(train)  # no label gives away its last example


def test_stratified_reads_parts_and_preference_lines(tmp_path):
    chat_lines = [chat(f"t{i}", label, parts=i % 2 == 0) for i in range(4) for label in ("x", "y")]
    src = write_lines(tmp_path / "chat.jsonl", chat_lines)
    assert split(tmp_path, src, valid_size=2, stratify=True).strata == 2
    assert Counter(answers(tmp_path / "valid.jsonl")) == {"x": 1, "y": 1}

    def pref(i: int, label: str) -> str:
        return json.dumps({"input": {"messages": [{"role": "user", "content": f"q{i}"}]},
                           "preferred_output": [{"role": "assistant", "content": label}],
                           "non_preferred_output": [{"role": "assistant", "content": "no"}]})

    src = write_lines(tmp_path / "pref.jsonl", [pref(i, label) for i in range(4) for label in ("x", "y")])
    assert split(tmp_path, src, valid_size=2, stratify=True, force=True).strata == 2
    assert Counter(answers(tmp_path / "valid.jsonl")) == {"x": 1, "y": 1}


def test_stratified_refuses_when_every_label_is_unique(tmp_path):
    with pytest.raises(SelftuneError, match="at most 0"):
        split(tmp_path, examples(tmp_path, 10), valid_size=2, stratify=True)


# --- bytes, bad input, paths -------------------------------------------------------------------


def test_bytes_of_lines_are_preserved(tmp_path):
    raw = [b'{"messages":[{"role":"user","content":"caf\\u00e9"},{"role":"assistant","content":"  x  "}]}',
           '{ "messages" : [ {"role": "user", "content": "日本"}, {"role": "assistant", "content": "y"} ] }'
           .encode()]
    body = b"\xef\xbb\xbf" + raw[0] + b"\r\n\n   \n" + raw[1] + b"\r\n" + raw[0]  # BOM, CRLF, blanks, no final \n
    src = tmp_path / "data.jsonl"
    src.write_bytes(body)
    summary = split(tmp_path, src, valid_size=1)
    assert (summary.train, summary.valid) == (2, 1)
    out = (tmp_path / "train.jsonl").read_bytes() + (tmp_path / "valid.jsonl").read_bytes()
    assert sorted(out.splitlines(keepends=True)) == sorted([raw[0] + b"\n", raw[1] + b"\n", raw[0] + b"\n"])


def test_unreadable_lines_are_listed(tmp_path):
    lines = [chat(f"q{i}", "a") for i in range(10)]
    lines[2] = "{broken"
    for i in (4, 5, 6, 7, 8, 9):
        lines[i] = "nope"
    src = write_lines(tmp_path / "data.jsonl", lines)
    with pytest.raises(SelftuneError) as err:
        split(tmp_path, src, valid_size=1)
    message = str(err.value)
    assert f"{src}:3: invalid_json" in message and f"{src}:8: invalid_json" in message
    assert f"{src}:9:" not in message and "and 2 more" in message
    assert not (tmp_path / "train.jsonl").exists()


def test_refuses_to_overwrite_without_force(tmp_path):
    src = examples(tmp_path, 10)
    (tmp_path / "valid.jsonl").write_text("old\n")
    with pytest.raises(SelftuneError, match="valid.jsonl exists; pass --force"):
        split(tmp_path, src, valid_size=2)
    assert (tmp_path / "valid.jsonl").read_text() == "old\n" and not (tmp_path / "train.jsonl").exists()
    assert split(tmp_path, src, valid_size=2, force=True).valid == 2
    assert len(users(tmp_path / "valid.jsonl")) == 2


def test_overwrite_check_comes_before_reading(tmp_path):
    (tmp_path / "train.jsonl").write_text("old\n")
    with pytest.raises(SelftuneError, match="exists"):
        split(tmp_path, tmp_path / "missing.jsonl", valid_size=2)


def test_refuses_clashing_paths(tmp_path):
    src = examples(tmp_path, 10)
    with pytest.raises(SelftuneError, match="different files"):
        split_file(src, train_out=tmp_path / "a.jsonl", valid_out=tmp_path / "a.jsonl", valid_size=2)
    with pytest.raises(SelftuneError, match="input file"):
        split_file(src, train_out=src, valid_out=tmp_path / "v.jsonl", valid_size=2, force=True)
    assert len(users(src)) == 10


def test_outputs_pass_check(tmp_path):
    split(tmp_path, examples(tmp_path, 40), valid_fraction=0.25)
    assert check(tmp_path / "train.jsonl").valid and check(tmp_path / "valid.jsonl").valid
