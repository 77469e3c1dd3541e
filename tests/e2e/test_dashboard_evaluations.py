"""The Evaluations pages in a real browser against a real server: a ``selftune eval`` run recorded in the
server's store is listed and its report opens from the list; a run started from the form shows its
progress and finishes. Every page is watched for console errors, page errors and dialogs (the report
runs under its own script-free policy: nothing in it may try to run)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import watched

pytestmark = pytest.mark.slow  # a CLI eval and a dashboard eval on the tiny model, ~20 s with the browser


@pytest.fixture(scope="module")
def recorded(shared_server, tmp_path_factory, chat_rows, write_jsonl):
    """``selftune eval`` on the tiny model, against the shared server and recorded in its store."""
    tmp = tmp_path_factory.mktemp("evals")
    data = write_jsonl(tmp / "test.jsonl", chat_rows(12, seed=7))
    result = subprocess.run([sys.executable, "-m", "selftune.cli", "eval", "--data", str(data), "--model", "tiny",
                             "--limit", "3", "--base-url", shared_server.url, "--out", str(tmp / "out"),
                             "--home", str(shared_server.home)],
                            env={**os.environ, **shared_server.env}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("evaluation: "))
    eval_id = line.split()[1]
    assert line.endswith(f"{shared_server.url.removesuffix('/v1')}/evals/{eval_id}")
    return eval_id


def test_a_recorded_evaluation_opens_its_report_from_the_list(shared_server, chromium, recorded):
    context = chromium.new_context()
    page, problems = watched(context)
    page.goto(shared_server.url.removesuffix("/v1") + "/evals")
    assert page.title() == "Evaluations · selftune"
    row = page.locator(f'tr[data-eval="{recorded}"]')
    assert "test.jsonl" in row.inner_text() and "tiny" in row.inner_text()
    row.locator("a.report-link").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/evals/{recorded}/report.html")
    assert "What fine-tuning bought" in page.inner_text("h1")
    context.close()
    assert problems == []


def test_an_evaluation_started_from_the_form_shows_its_progress_and_finishes(shared_server, chromium, tmp_path,
                                                                             chat_rows, upload):
    client = shared_server.client()
    data = upload(client, tmp_path / "held-out.jsonl", chat_rows(12, seed=9))
    context = chromium.new_context()
    page, problems = watched(context)
    page.goto(shared_server.url.removesuffix("/v1") + "/evals/new")
    page.select_option('select[name="data_file"]', data.id)
    page.check('input[name="models"][value="tiny"]')
    page.fill('input[name="limit"]', "3")
    page.click('button[type="submit"]')
    page.wait_for_url("**/evals/eval-*")
    page.wait_for_selector('#eval-status[data-status="succeeded"]', timeout=120_000)  # polled until it finished
    assert "Headline figures" in page.inner_text("#eval-status")
    page.click("#eval-status a.report-link")
    page.wait_for_load_state()
    assert page.url.endswith("/report.html")
    context.close()
    assert problems == []
