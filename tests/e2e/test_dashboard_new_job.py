"""The New job page in a real browser against a real server: a bad file chosen with the file input shows
its problems by line; a good file dropped on the drop zone shows its statistics, and Start trains a tiny
job with the chosen settings and lands on its page. No console errors, no dialogs."""

from __future__ import annotations

import json

import pytest

from tests.helpers import XSS, watched

# ~15 s of browser and a one-epoch tiny job: in the slow suite; the page's rules are tested in-process in
# tests/dashboard/test_new_job.py
pytestmark = pytest.mark.slow

REFUSED = "console error: Failed to load resource: the server responded with a status of 400 (Bad Request)"

DROP = """([name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, {type: "application/jsonl"}));
  const zone = document.getElementById("dropzone");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
  }
}"""


def lines(rows: list) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def test_a_bad_file_shows_its_problems_and_a_good_one_starts_a_job(shared_server, chromium, chat_rows, wait_for):
    base = shared_server.url.removesuffix("/v1")
    client = shared_server.client()
    context = chromium.new_context()
    page, problems = watched(context)
    page.goto(f"{base}/new?model=tiny")
    assert page.title() == "New job · selftune"

    # a bad file, chosen with the plain file input: its problems, by line and code
    bad = [json.dumps(row) for row in chat_rows(12)]
    bad[3] = "{oops"
    bad[6] = json.dumps({"messages": [{"role": "user", "content": "no answer"}]})
    page.set_input_files("#upload-file", files=[{"name": f"{XSS}.jsonl", "mimeType": "application/jsonl",
                                                 "buffer": ("\n".join(bad) + "\n").encode()}])
    page.wait_for_selector(".report.invalid")
    assert page.locator("#file .filename").inner_text() == f"{XSS}.jsonl"  # text, not markup
    assert page.locator("table.problems tr[data-line]").count() == 2
    assert page.locator('tr[data-line="4"] td.code').inner_text() == "invalid_json"
    assert page.locator('tr[data-line="7"]').count() == 1
    assert page.locator("#start").count() == 0

    # a good file, dropped on the drop zone: its statistics (loaded after the page), then the form
    page.evaluate(DROP, ["good.jsonl", lines(chat_rows(12))])
    page.wait_for_selector(".report.valid")
    assert page.locator("#file .filename").inner_text() == "good.jsonl"
    page.wait_for_selector('#stats[data-examples="12"]', timeout=60_000)
    assert "Billed tokens" in page.inner_text("#stats")
    page.dispatch_event("#model", "change")  # the model's select reloads the statistics in place
    page.wait_for_selector('#stats[data-examples="12"]:not(.stale)', timeout=60_000)
    assert page.input_value("#model") == "tiny"

    # only the chosen method's hyperparameters are shown
    assert page.is_hidden("#hp_beta")
    page.select_option("#method", "dpo")
    assert page.is_visible("#hp_beta")
    page.select_option("#method", "supervised")
    assert page.is_hidden("#hp_beta")

    # a refusal of the API's comes back on the form, with what was typed
    page.fill("#hp_n_epochs", "0")
    page.fill("#suffix", "new-job-e2e")
    page.click("button.start")
    page.wait_for_selector("#start-problem")
    assert "n_epochs" in page.inner_text("#start-problem")
    assert page.input_value("#suffix") == "new-job-e2e"
    # the refused form comes back as a 400 page (as the API answers), which chromium logs; nothing else
    assert problems == [REFUSED]
    problems.clear()

    page.fill("#hp_n_epochs", "1")
    page.dispatch_event("#hp_n_epochs", "change")  # the estimate follows the epochs typed
    page.wait_for_selector('#stats:not(.stale) dd.epochs:text-is("1")', timeout=60_000)
    page.fill("#seed", "3")
    page.fill("#metadata", "source=new-job-e2e")
    page.click("button.start")
    page.wait_for_url(f"{base}/jobs/ftjob-*")
    job_id = page.url.rsplit("/", 1)[-1]
    assert page.inner_text("h1") == job_id
    job = wait_for(client, job_id)
    assert job.status == "succeeded", job.error
    assert job.method.supervised.hyperparameters.n_epochs == 1 and job.seed == 3
    assert job.user_provided_suffix == "new-job-e2e" and job.metadata == {"source": "new-job-e2e"}
    page.wait_for_selector('#summary[data-status="succeeded"]', timeout=60_000)
    context.close()
    assert problems == []
