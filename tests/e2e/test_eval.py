"""``selftune eval`` against a live server: a fine-tuned model beside the few-shot base, the report
files, the HTML report in a real browser, and a local server started when none is given."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest


def selftune(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selftune.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env or {})})


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, shared_server, chat_rows, upload, wait_for, write_jsonl):
    """A fine-tuned tiny model, then ``selftune eval`` of it and of the 3-shot base through the CLI."""
    tmp = tmp_path_factory.mktemp("eval")
    client = shared_server.client()
    train = chat_rows(20)
    job = client.fine_tuning.jobs.create(model="tiny", training_file=upload(client, tmp / "train.jsonl", train).id,
                                         seed=0, hyperparameters={"n_epochs": 20, "learning_rate_multiplier": 10})
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    test = write_jsonl(tmp / "test.jsonl", train[:12])  # the model learnt these: its answers are close
    shots = write_jsonl(tmp / "shots.jsonl", chat_rows(20, seed=2))
    result = selftune("eval", "--data", str(test), "--model", job.fine_tuned_model, "--model", "tiny",
                      "--few-shot", "3", "--few-shot-from", str(shots), "--grader", "classification",
                      "--grader", "judge:tiny", "--base-url", shared_server.url, "--concurrency", "3",
                      "--max-tokens", "8", "--price", "hosted-mini=0.15:0.60", "--out", str(tmp / "report"))
    assert result.returncode == 0, result.stderr + shared_server.log()
    return tmp / "report", result.stdout, job.fine_tuned_model


def test_report_puts_the_fine_tuned_model_beside_the_few_shot_base(evaluated):
    out, stdout, tuned = evaluated
    report = json.loads((out / "report.json").read_text())
    assert report["examples"] == 12 and report["graders"] == ["classification", "judge:tiny"]
    assert report["labels"] == sorted({"card_arrival", "lost_card", "top_up", "refund", "exchange_rate"})
    fine, base = report["models"]
    assert (fine["model"], fine["kind"], base["model"], base["kind"]) == (tuned, "fine-tuned", "tiny", "base, 3-shot")
    for r in report["models"]:
        q = r["quality"]["classification"]
        assert 0 <= q["ci95"][0] <= q["mean"] <= q["ci95"][1] <= 1
        assert r["requests"] == 12 and r["errors"] == 0
        assert 0 < r["latency_s"]["p50"] <= r["latency_s"]["p95"] and len(r["latency_s"]["all"]) == 12
        assert r["cost_per_1000"]["local"] > 0
        assert r["cost_per_1000"]["hosted-mini"] == pytest.approx(
            (r["prompt_tokens"] * 0.15 + r["completion_tokens"] * 0.60) / 1000)
        judge = r["quality"]["judge:tiny"]
        assert len(judge["reasons"]) == 12 and judge["judge_errors"] == 0
        assert len(q["confusion"]["rows"]) == 5
    # three solved examples and the label list make the base model's prompt several times longer
    assert base["prompt_tokens"] > 3 * fine["prompt_tokens"]
    (comparison,) = report["comparisons"]
    assert comparison["prompt_tokens_ratio"] == pytest.approx(base["prompt_tokens"] / fine["prompt_tokens"])
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and {r["model"] for r in rows} == {tuned, "tiny"}
    assert all(set(r["scores"]) == {"classification", "judge:tiny"} for r in rows)
    assert {r["scores"]["judge:tiny"] for r in rows} <= {0, 0.25, 0.5, 0.75, 1}  # a 1-5 verdict, always parsed
    assert f"{tuned} against tiny (base, 3-shot):" in stdout and "fewer prompt tokens" in stdout
    assert "report: " in stdout and (out / "report.html").is_file()


def test_the_html_report_opens_without_console_errors(evaluated):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs Debian's chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    out, _, tuned = evaluated
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto((out / "report.html").as_uri())
        assert page.title().startswith("selftune eval")
        assert page.locator("svg").count() >= 5  # quality, tokens, latency, two confusion matrices
        assert tuned in page.inner_text("table")
        browser.close()
    assert problems == []


def test_eval_starts_a_local_server_when_none_is_given(tmp_path, tiny_model, chat_rows, write_jsonl):
    test = write_jsonl(tmp_path / "test.jsonl", chat_rows(6, seed=5))
    env = {"SELFTUNE_HOME": str(tmp_path / "home"), "SELFTUNE_BASE_MODELS": f"tiny={tiny_model}",
           "HF_HUB_OFFLINE": "1", "SELFTUNE_API_KEYS": ""}
    result = selftune("eval", "--data", str(test), "--model", "tiny", "--out", str(tmp_path / "out"),
                      "--max-tokens", "4", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["endpoint"].startswith("http://127.0.0.1:") and report["models"][0]["kind"] == "base"
    assert report["graders"] == ["normalized"]  # 6 answers over 5 intents: not labels
    missing = selftune("eval", "--data", str(test), "--model", "nope", "--out", str(tmp_path / "out2"), env=env)
    assert missing.returncode == 2 and "has no model 'nope'" in missing.stderr


def test_sigterm_stops_the_server_a_run_started(tmp_path, tiny_model):
    """SIGTERM (not only Ctrl-C) to a command that started its own server stops that server too: once
    it left the server and its training child running, and the next run waited for them."""
    import signal

    import openai

    env = {**os.environ, "SELFTUNE_HOME": str(tmp_path / "home"), "SELFTUNE_BASE_MODELS": f"tiny={tiny_model}",
           "HF_HUB_OFFLINE": "1", "SELFTUNE_API_KEYS": ""}
    script = ("import sys, time\nfrom pathlib import Path\nfrom selftune.evals.local_server import local_server\n"
              f"with local_server(Path({str(tmp_path / 'server.log')!r})) as url:\n"
              "    print(url, flush=True)\n    time.sleep(600)\n")
    run = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    url = run.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    client = openai.OpenAI(base_url=url, api_key="local", max_retries=0, timeout=5)
    assert "tiny" in [m.id for m in client.models.list()]
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) != 0  # interrupted, after stopping its server
    with pytest.raises(openai.APIConnectionError):
        client.models.list()


def test_batch_gives_the_answers_one_by_one_gives_without_timing_requests(tmp_path, shared_server, chat_rows,
                                                                          write_jsonl):
    """``--batch``: the model's and the judge's requests go through /v1/batches, one batch each; the
    answers are those of the one-by-one run, and latency shows as not measured rather than as a number."""
    test = write_jsonl(tmp_path / "test.jsonl", chat_rows(6, seed=7))
    common = ("eval", "--data", str(test), "--model", "tiny", "--grader", "normalized", "--grader", "judge:tiny",
              "--base-url", shared_server.url, "--max-tokens", "4", "--price", "hosted-batch=0.075:0.30")
    batched = selftune(*common, "--batch", "--out", str(tmp_path / "batched"))
    assert batched.returncode == 0, batched.stderr + shared_server.log()
    direct = selftune(*common, "--out", str(tmp_path / "direct"))
    assert direct.returncode == 0, direct.stderr

    def read(name: str) -> tuple[dict, list[dict]]:
        out = tmp_path / name
        return (json.loads((out / "report.json").read_text()),
                [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()])

    (report, rows), (direct_report, direct_rows) = read("batched"), read("direct")
    assert report["batch"] is True and direct_report["batch"] is False
    [model], [direct_model] = report["models"], direct_report["models"]
    assert [r["answer"] for r in rows] == [r["answer"] for r in direct_rows]  # greedy: the same answers
    assert [r["scores"] for r in rows] == [r["scores"] for r in direct_rows]  # the judge's verdicts too
    assert model["errors"] == 0 and model["quality"]["judge:tiny"]["judge_errors"] == 0
    assert model["prompt_tokens"] == direct_model["prompt_tokens"] and model["cost_per_1000"]["hosted-batch"] > 0
    assert model["latency_s"] == {"p50": None, "p95": None, "mean": None, "all": []}
    assert all(r["latency_s"] is None for r in rows) and direct_model["latency_s"]["p50"] > 0
    assert model["wall_s"] > 0 and model["requests_per_s"] > 0
    assert "— (batch)" in batched.stdout and "evaluation: " in batched.stdout, batched.stdout
    html = (tmp_path / "batched" / "report.html").read_text()
    assert "— (batch)" in html and "Batch API" in html and "<figcaption>Latency</figcaption>" not in html
    sent = [b for b in shared_server.client().batches.list(limit=100)
            if (b.metadata or {}).get("selftune", "").startswith("eval")]
    assert sorted(b.metadata["selftune"] for b in sent) == ["eval", "eval judge"]
    assert all(b.status == "completed" and b.request_counts.completed == 6 for b in sent)
