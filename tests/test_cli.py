"""The `selftune` command as a user runs it: a subprocess, its exit code and the exact lines it prints."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import FILLER, GOOD, USER, write_jsonl

SELFTUNE = str(Path(sys.executable).parent / "selftune")


def run(*args, cwd=None, home=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if home is not None:
        env["SELFTUNE_HOME"] = str(home)
    result = subprocess.run([SELFTUNE, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
                            timeout=300)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


def test_check_valid_file(tmp_path, tiny_model):
    write_jsonl(tmp_path / "good.jsonl", FILLER)
    result = run("data", "check", "good.jsonl", "--model", tiny_model, cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == "✓ good.jsonl: valid, 10 examples, chat (sft)\n"


def test_check_invalid_file_names_line_field_and_reason(tmp_path):
    rows = [*FILLER, {"messages": [{"role": "bot", "content": "x"}, {**USER, "weight": 1}]}, "{broken"]
    write_jsonl(tmp_path / "bad.jsonl", rows)
    result = run("data", "check", "bad.jsonl", "--no-length-check", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "bad.jsonl:11: messages[0].role: invalid_role: role 'bot' is not one of system, developer, user, assistant, tool",
        "bad.jsonl:11: messages[1].weight: weight_not_allowed: weight is only allowed on assistant messages, not on user",
        "bad.jsonl:12: invalid_json: not valid JSON: Expecting property name enclosed in double quotes at column 2",
        "✗ bad.jsonl: invalid, 3 errors on 2 of 12 examples, chat (sft)",
    ]


def test_check_caps_the_listing(tmp_path):
    write_jsonl(tmp_path / "bad.jsonl", [*FILLER, *["[]"] * 7])
    result = run("data", "check", "bad.jsonl", "--no-length-check", "--max-problems", "2", cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert result.returncode == 1 and len(lines) == 4
    assert lines[2] == "bad.jsonl: ... and 5 more errors not shown"


def test_check_json_output(tmp_path):
    write_jsonl(tmp_path / "bad.jsonl", [GOOD] * 3)
    result = run("data", "check", "bad.jsonl", "--no-length-check", "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["valid"] is False and report["examples"] == 3
    assert report["errors"] == [{"severity": "error", "code": "too_few_examples", "line": None, "field": None,
                                 "message": "the file has 3 examples; at least 10 are needed"}]


def test_check_length_warning_keeps_exit_zero(tmp_path, tiny_model):
    long = {"messages": [USER, {"role": "assistant", "content": "word " * 400}]}
    write_jsonl(tmp_path / "f.jsonl", [*FILLER, long])
    result = run("data", "check", "f.jsonl", "--model", tiny_model, cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "f.jsonl: warning: too_long: 1 example is longer than the model's context of 256 tokens and will be "
        "truncated: line 11",
        "✓ f.jsonl: valid, 11 examples, chat (sft), 1 warning",
    ]


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.jsonl", "error: {p}: no such file"),
    (lambda d: d, "error: {p}: is a directory, not a file"),
])
def test_check_usage_errors_exit_2(tmp_path, make, message):
    path = make(tmp_path)
    result = run("data", "check", path, "--no-length-check")
    assert result.returncode == 2
    assert result.stderr.strip() == message.format(p=path)


def test_missing_argument_is_a_usage_error():
    result = run("data", "check")
    assert result.returncode == 2 and "Missing argument" in result.stderr


def test_random_bytes_never_crash(tmp_path):
    rng = random.Random(7)
    garbage = bytes(rng.randrange(256) for _ in range(20_000))
    (tmp_path / "junk.jsonl").write_bytes(garbage)
    result = run("data", "check", "junk.jsonl", "--no-length-check", cwd=tmp_path)
    assert result.returncode == 1 and "✗ junk.jsonl: invalid" in result.stdout


def test_stats_table(tmp_path, tiny_model):
    write_jsonl(tmp_path / "f.jsonl", FILLER * 2)
    result = run("data", "stats", "f.jsonl", "--model", tiny_model, "--no-estimate-time", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "│ examples" in result.stdout and "20 │" in result.stdout
    data = json.loads(run("data", "stats", "f.jsonl", "--model", tiny_model, "--no-estimate-time", "--json",
                          cwd=tmp_path).stdout)
    assert data["examples"] == 20 and data["estimate"]["n_epochs"] == 5


def test_stats_of_an_invalid_file_points_at_check(tmp_path, tiny_model):
    write_jsonl(tmp_path / "f.jsonl", [*FILLER, "[]"])
    result = run("data", "stats", "f.jsonl", "--model", tiny_model, "--no-estimate-time", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: f.jsonl:11: not_an_object:")


def test_convert_then_check_then_split(tmp_path, tiny_model):
    lines = ["question,answer"] + [f"how do I do thing {i}?,label_{i % 2}" for i in range(20)]
    (tmp_path / "faq.csv").write_text("\n".join(lines) + "\n")
    result = run("data", "convert", "faq.csv", "faq.jsonl", "--user-column", "question",
                 "--assistant-column", "answer", "--system", "Label the question.", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "✓ wrote 20 examples to faq.jsonl\n")
    again = run("data", "convert", "faq.csv", "faq.jsonl", "--user-column", "question",
                "--assistant-column", "answer", cwd=tmp_path)
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    assert run("data", "check", "faq.jsonl", "--model", tiny_model, cwd=tmp_path).returncode == 0

    result = run("data", "split", "faq.jsonl", "--valid-size", "4", "--stratify", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("✓ 16 examples -> faq.train.jsonl, 4 -> faq.valid.jsonl, "
                             "stratified over 2 answers\n")
    assert len((tmp_path / "faq.valid.jsonl").read_text().splitlines()) == 4


def test_convert_reports_bad_rows(tmp_path):
    (tmp_path / "faq.csv").write_text("text,label\nhello,greeting\n,empty_text\n")
    result = run("data", "convert", "faq.csv", "out.jsonl", cwd=tmp_path)
    assert result.returncode == 1 and not (tmp_path / "out.jsonl").exists()
    assert result.stdout.splitlines()[0].startswith("faq.csv:3: text: empty_value:")


def test_models_list(tmp_path):
    result = run("models", "list", "--json", home=tmp_path)
    models = {m["id"]: m for m in json.loads(result.stdout)}
    assert models["smollm2-135m-instruct"]["kind"] == "bundled"
    assert models["smollm2-135m-instruct"]["available"] is True


@pytest.mark.slow  # converts the bundled SmolLM2 (~20 s); the slow README flow and parity tests run on it too
def test_banking77_checks_clean_with_the_bundled_model(banking77, smollm2_home):
    for name in ("train_1k.jsonl", "test.jsonl"):
        result = run("data", "check", banking77 / name, home=smollm2_home)
        assert result.returncode == 0, result.stdout[-2000:]
        assert result.stdout.startswith("✓") and "warning" not in result.stdout


def test_convert_tsv_uses_a_tab_and_skip_invalid_with_nothing_left_fails(tmp_path):
    rows = "\n".join(["text\tlabel"] + [f"message {i}\tlabel_{i % 2}" for i in range(10)]) + "\n"
    (tmp_path / "data.tsv").write_text(rows)
    result = run("data", "convert", "data.tsv", "data.jsonl", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "✓ wrote 10 examples to data.jsonl\n")

    (tmp_path / "bad.csv").write_text("text,label\n,x\n")
    result = run("data", "convert", "bad.csv", "bad.jsonl", "--skip-invalid", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "✗ wrote 0 examples to bad.jsonl, skipped 1 bad row"


def test_train_then_export(tmp_path, tiny_model):
    """`selftune train` prints one summary line and the output folder; `export --merge` writes a model."""
    write_jsonl(tmp_path / "train.jsonl", FILLER)
    result = run("train", "--model", tiny_model, "--train", "train.jsonl", "--epochs", "2", "--out", "run",
                 "--events", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary, where = result.stdout.splitlines()
    assert summary.startswith("succeeded: ") and "tokens/s" in summary and "train loss" in summary
    assert where == "output: run"
    assert (tmp_path / "run" / "training.json").is_file()
    assert result.stderr == ""  # no library warnings or progress bars leak out
    assert json.loads((tmp_path / "events.jsonl").read_text().splitlines()[0])["type"] == "start"
    merged = run("export", "run", "--merge", "--out", "merged", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout == "merged model written to merged\n"
    assert (tmp_path / "merged" / "model.safetensors").is_file()


def _first_train_loss(run_folder: Path) -> float:
    import csv

    with (run_folder / "results.csv").open() as f:
        return float(next(csv.DictReader(f))["train_loss"])


def test_train_init_adapter_continues_a_run_on_its_own_base(tmp_path, tiny_model):
    """`--init-adapter RUN` trains the run's adapter further on the run's base (no --model needed): with the same
    seed and data, a fresh adapter's first step would repeat the first run's first loss exactly."""
    write_jsonl(tmp_path / "train.jsonl", FILLER)
    first = run("train", "--model", tiny_model, "--train", "train.jsonl", "--epochs", "3", "--lr-multiplier", "10",
                "--out", "first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = run("train", "--init-adapter", "first", "--train", "train.jsonl", "--epochs", "1", "--out", "second",
                 cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    record = json.loads((tmp_path / "second" / "training.json").read_text())
    assert record["base_model"] == str(tiny_model)
    assert record["config"]["init_adapter"] == "first"
    assert _first_train_loss(tmp_path / "second") < _first_train_loss(tmp_path / "first")

    other = run("train", "--init-adapter", "first", "--model", "second", "--train", "train.jsonl", "--out", "third",
                cwd=tmp_path)
    assert other.returncode != 0 and f"was trained on {tiny_model}, not on --model second" in other.stderr
    missing = run("train", "--init-adapter", "nowhere", "--train", "train.jsonl", "--out", "third", cwd=tmp_path)
    assert missing.returncode != 0 and "'nowhere' is not a run folder" in missing.stderr
    assert not (tmp_path / "third").exists()


def test_train_stops_on_an_invalid_file_with_stage_1_problems(tmp_path, tiny_model):
    write_jsonl(tmp_path / "bad.jsonl", [*FILLER, {"messages": [{"role": "bot", "content": "x"}]}])
    result = run("train", "--model", tiny_model, "--train", "bad.jsonl", "--out", "run", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad.jsonl:11: messages[0].role: invalid_role" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--epochs", "many"], "expected 'auto' or a number"),
    (["--time-budget", "soon"], "expected a duration"),
    (["--beta", "0.2"], "error: beta applies to method='dpo' only"),
])
def test_train_usage_errors_exit_2(tmp_path, tiny_model, args, message):
    write_jsonl(tmp_path / "train.jsonl", FILLER)
    result = run("train", "--model", tiny_model, "--train", "train.jsonl", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_train_with_unknown_lora_targets_names_the_real_layers(tmp_path, tiny_model):
    write_jsonl(tmp_path / "train.jsonl", FILLER)
    result = run("train", "--model", tiny_model, "--train", "train.jsonl", "--lora-targets", "nope", "--out", "run",
                 cwd=tmp_path)
    assert result.returncode == 2
    assert "LoRA targets ['nope'] don't match" in result.stderr
    assert "q_proj" in result.stderr


def test_serve_refuses_malformed_api_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFTUNE_API_KEYS", "no-org-here")
    result = run("serve", "--home", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: SELFTUNE_API_KEYS: 'no-org-here' is not 'key:organisation'"
