"""convert_csv and convert_prompt_completion: happy paths, every problem code, atomic output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selftune.data import check
from selftune.data.convert import MAX_PROBLEMS, convert_csv, convert_prompt_completion
from selftune.errors import SelftuneError


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def codes(summary) -> list[tuple[str, int | None, str | None]]:
    return [(p.code, p.line, p.field) for p in summary.problems]


def csv_file(tmp_path: Path, rows: int = 12) -> Path:
    body = "".join(f"question {i},answer {i}\n" for i in range(rows))
    return write(tmp_path / "in.csv", "question,answer\n" + body)


def legacy_file(tmp_path: Path, rows: int = 12) -> Path:
    body = "".join(json.dumps({"prompt": f"q{i} ->", "completion": f" a{i}\n"}) + "\n" for i in range(rows))
    return write(tmp_path / "in.jsonl", body)


# --- CSV: happy paths -------------------------------------------------------------------------


def test_csv_with_system_prompt(tmp_path):
    src = write(tmp_path / "in.csv", "id,question,answer\n1, What is 2+2? ,4\n2,Capital of France?,  Paris\n")
    summary = convert_csv(src, tmp_path / "out.jsonl", user_column="question", assistant_column="answer",
                          system_prompt="Be brief.")
    assert summary.ok and summary.written == 2 and summary.problems == []
    assert read_lines(tmp_path / "out.jsonl") == [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"},
                      {"role": "assistant", "content": "4"}]},
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Capital of France?"},
                      {"role": "assistant", "content": "Paris"}]},
    ]


def test_csv_quoted_multiline_fields_bom_and_unicode(tmp_path):
    text = '\ufeffq,a\n"line one\nline two","said ""hi"", then left"\r\n"ünïcødé ✓","日本語"\n'
    src = write(tmp_path / "in.csv", text)
    summary = convert_csv(src, tmp_path / "out.jsonl", user_column="q", assistant_column="a")
    assert summary.written == 2
    rows = read_lines(tmp_path / "out.jsonl")
    assert rows[0]["messages"] == [{"role": "user", "content": "line one\nline two"},
                                   {"role": "assistant", "content": 'said "hi", then left'}]
    assert rows[1]["messages"][1]["content"] == "日本語"
    assert "日本語" in (tmp_path / "out.jsonl").read_text(encoding="utf-8")  # ensure_ascii=False


def test_csv_other_delimiter_and_blank_rows_skipped(tmp_path):
    src = write(tmp_path / "in.tsv", "q\ta\n\nhello\tworld\n\t\n")
    summary = convert_csv(src, tmp_path / "out.jsonl", user_column="q", assistant_column="a", delimiter="\t")
    assert summary.ok and summary.written == 1


def test_csv_long_field_beyond_csv_default_limit(tmp_path):
    long = "x" * 200_000
    src = write(tmp_path / "in.csv", f"q,a\nhi,{long}\n")
    summary = convert_csv(src, tmp_path / "out.jsonl", user_column="q", assistant_column="a")
    assert summary.written == 1
    assert read_lines(tmp_path / "out.jsonl")[0]["messages"][1]["content"] == long


def test_csv_output_passes_check(tmp_path):
    summary = convert_csv(csv_file(tmp_path), tmp_path / "out.jsonl", user_column="question",
                          assistant_column="answer", system_prompt="You help.")
    assert summary.written == 12
    report = check(tmp_path / "out.jsonl")
    assert report.valid, report.errors
    assert report.valid_examples == 12


# --- CSV: problems and refusals ---------------------------------------------------------------


def test_csv_missing_column_names_it_and_lists_header(tmp_path):
    src = write(tmp_path / "in.csv", "question,reply\nq,a\n")
    with pytest.raises(SelftuneError, match=r"no column 'answer'.*'question', 'reply'"):
        convert_csv(src, tmp_path / "out.jsonl", user_column="question", assistant_column="answer")
    assert not (tmp_path / "out.jsonl").exists()


def test_csv_empty_file_and_bad_delimiter(tmp_path):
    src = write(tmp_path / "in.csv", "")
    with pytest.raises(SelftuneError, match="header"):
        convert_csv(src, tmp_path / "out.jsonl", user_column="q", assistant_column="a")
    with pytest.raises(SelftuneError, match="one character"):
        convert_csv(src, tmp_path / "out.jsonl", user_column="q", assistant_column="a", delimiter=";;")


def test_csv_invalid_utf8_is_a_one_line_error(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(b"q,a\nhello,caf\xe9\n")
    with pytest.raises(SelftuneError, match="UTF-8"):
        convert_csv(src, tmp_path / "out.jsonl", user_column="q", assistant_column="a")
    assert not (tmp_path / "out.jsonl").exists()


def test_csv_problems_carry_start_line_and_column(tmp_path):
    text = ('q,a,note\n'
            'ok,fine,\n'              # line 2
            '"multi\nline",,n\n'      # lines 3-4: empty answer, reported at line 3
            ',also empty,n\n'         # line 5: empty question
            'too,many,fields,n\n'     # line 6
            '"  ","  ",n\n'           # line 7: both blank after stripping
            ',,\n')                   # line 8: an empty spreadsheet row, skipped
    src = write(tmp_path / "in.csv", text)
    summary = convert_csv(src, tmp_path / "out.jsonl", user_column="q", assistant_column="a")
    assert not summary.ok and summary.written == 0
    assert codes(summary) == [("empty_value", 3, "a"), ("empty_value", 5, "q"), ("malformed_row", 6, None),
                              ("empty_value", 7, "q"), ("empty_value", 7, "a")]
    assert summary.skipped == 4
    assert not (tmp_path / "out.jsonl").exists()


def test_csv_skip_invalid_writes_the_good_rows(tmp_path):
    src = write(tmp_path / "in.csv", "q,a\nhi,there\nonly question,\nbye,now\n")
    summary = convert_csv(src, tmp_path / "out.jsonl", user_column="q", assistant_column="a", skip_invalid=True)
    assert summary.ok and summary.written == 2 and summary.skipped == 1
    assert codes(summary) == [("empty_value", 3, "a")]
    assert [r["messages"][0]["content"] for r in read_lines(tmp_path / "out.jsonl")] == ["hi", "bye"]


def test_csv_problem_list_is_capped(tmp_path):
    src = write(tmp_path / "in.csv", "q,a\n" + "x,\n" * (MAX_PROBLEMS + 7))
    summary = convert_csv(src, tmp_path / "out.jsonl", user_column="q", assistant_column="a")
    assert len(summary.problems) == MAX_PROBLEMS and summary.problems_not_shown == 7
    assert summary.problem_count == MAX_PROBLEMS + 7


# --- prompt/completion ------------------------------------------------------------------------


def test_legacy_strips_by_default_and_adds_system(tmp_path):
    summary = convert_prompt_completion(legacy_file(tmp_path, 2), tmp_path / "out.jsonl", system_prompt="Sys")
    assert summary.ok and summary.written == 2
    assert read_lines(tmp_path / "out.jsonl")[1] == {"messages": [
        {"role": "system", "content": "Sys"}, {"role": "user", "content": "q1 ->"},
        {"role": "assistant", "content": "a1"}]}


def test_legacy_without_strip_keeps_whitespace(tmp_path):
    convert_prompt_completion(legacy_file(tmp_path, 1), tmp_path / "out.jsonl", strip=False)
    messages = read_lines(tmp_path / "out.jsonl")[0]["messages"]
    assert [m["content"] for m in messages] == ["q0 ->", " a0\n"]


def test_legacy_output_passes_check(tmp_path):
    summary = convert_prompt_completion(legacy_file(tmp_path), tmp_path / "out.jsonl")
    assert summary.written == 12
    assert check(tmp_path / "out.jsonl").valid


def test_legacy_every_problem_code(tmp_path):
    lines = [
        json.dumps({"prompt": "p", "completion": "c"}),              # 1: fine
        "[1, 2]",                                                    # 2: not an object
        json.dumps({"prompt": "p"}),                                 # 3: missing completion
        json.dumps({"prompt": 5, "completion": "c"}),                # 4: wrong type
        json.dumps({"prompt": "p", "completion": "   "}),            # 5: empty after stripping
        json.dumps({"prompt": "p", "completion": "c", "extra": 1}),  # 6: unexpected field
        "{not json",                                                 # 7: invalid JSON
        "",                                                          # 8: blank, skipped
    ]
    src = write(tmp_path / "in.jsonl", "\n".join(lines) + "\n")
    summary = convert_prompt_completion(src, tmp_path / "out.jsonl")
    assert codes(summary) == [("not_an_object", 2, None), ("missing_field", 3, "completion"),
                              ("wrong_type", 4, "prompt"), ("empty_value", 5, "completion"),
                              ("unexpected_field", 6, "extra"), ("invalid_json", 7, None)]
    assert summary.written == 0 and not summary.ok
    assert not (tmp_path / "out.jsonl").exists()


def test_legacy_invalid_utf8_is_a_problem(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"prompt": "p", "completion": "c"}\n{"prompt": "caf\xe9", "completion": "c"}\n')
    summary = convert_prompt_completion(src, tmp_path / "out.jsonl", skip_invalid=True)
    assert codes(summary) == [("invalid_utf8", 2, None)] and summary.written == 1


def test_legacy_lone_surrogate_is_refused(tmp_path):
    src = write(tmp_path / "in.jsonl", '{"prompt": "a\\ud800b", "completion": "c"}\n')
    summary = convert_prompt_completion(src, tmp_path / "out.jsonl")
    assert summary.written == 0 and not (tmp_path / "out.jsonl").exists()
    assert [(p.line, p.code) for p in summary.problems] == [(1, "invalid_unicode")]


# --- shared: overwrite, atomicity, same file --------------------------------------------------


@pytest.mark.parametrize("convert", ["csv", "legacy"])
def test_refuses_to_overwrite_without_force(tmp_path, convert):
    src = csv_file(tmp_path) if convert == "csv" else legacy_file(tmp_path)
    run = (lambda **kw: convert_csv(src, dest, user_column="question", assistant_column="answer", **kw)) \
        if convert == "csv" else (lambda **kw: convert_prompt_completion(src, dest, **kw))
    dest = write(tmp_path / "out.jsonl", "old\n")
    with pytest.raises(SelftuneError, match="exists; pass --force to overwrite"):
        run()
    assert dest.read_text() == "old\n"
    assert run(force=True).written == 12
    assert len(read_lines(dest)) == 12


def test_overwrite_check_comes_before_reading(tmp_path):
    dest = write(tmp_path / "out.jsonl", "old\n")
    with pytest.raises(SelftuneError, match="exists"):
        convert_csv(tmp_path / "missing.csv", dest, user_column="q", assistant_column="a")


def test_failed_conversion_leaves_dest_untouched(tmp_path):
    src = write(tmp_path / "in.jsonl", '{"prompt": "p", "completion": "c"}\n{"prompt": "p"}\n')
    dest = write(tmp_path / "out.jsonl", "old\n")
    summary = convert_prompt_completion(src, dest, force=True)
    assert summary.written == 0 and codes(summary) == [("missing_field", 2, "completion")]
    assert dest.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no temp file left


def test_refuses_same_file_and_missing_source(tmp_path):
    src = legacy_file(tmp_path)
    with pytest.raises(SelftuneError, match="input file"):
        convert_prompt_completion(src, src, force=True)
    with pytest.raises(SelftuneError, match="no such file"):
        convert_prompt_completion(tmp_path / "nope.jsonl", tmp_path / "out.jsonl")


def test_empty_system_prompt_is_refused(tmp_path):
    with pytest.raises(SelftuneError, match="system prompt"):
        convert_prompt_completion(legacy_file(tmp_path), tmp_path / "out.jsonl", system_prompt="  ")


def test_summary_serialises_ok(tmp_path):
    summary = convert_prompt_completion(legacy_file(tmp_path, 1), tmp_path / "out.jsonl")
    data = json.loads(summary.model_dump_json())
    assert data["ok"] is True and data["written"] == 1 and data["problems"] == []
