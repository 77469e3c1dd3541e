"""The playground, models and files pages in a real browser against a real server: a fine-tuned model
opened from the models page next to its base model, both answers streamed side by side with their token
counts (and a third column's refusal shown in that column), a malformed schema named in every column,
and a file deleted from the files page. Every page is watched for console errors and dialogs."""

from __future__ import annotations

import openai
import pytest

from tests.helpers import XSS, watched

# a short training job and a browser: in the slow suite; the rules are tested in-process in tests/dashboard/
pytestmark = pytest.mark.slow

REFUSED = "console error: Failed to load resource: the server responded with a status of {} ({})"


@pytest.fixture(scope="module")
def trained(shared_server, tmp_path_factory, chat_rows, upload, wait_for):
    """On the shared server: a fine-tuned tiny model (one epoch of 12 rows: a few seconds)."""
    client = shared_server.client()
    training = upload(client, tmp_path_factory.mktemp("playground") / "play.jsonl", chat_rows(12))
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id, suffix="play",
                                         hyperparameters={"n_epochs": 1})
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    return client, job


def test_a_fine_tuned_model_a_checkpoint_and_the_base_answer_side_by_side(shared_server, chromium, trained):
    client, job = trained
    base = shared_server.url.removesuffix("/v1")
    context = chromium.new_context()
    page, problems = watched(context)
    page.goto(f"{base}/models")
    row = page.locator(f'tr.job-models[data-job="{job.id}"]')
    assert job.fine_tuned_model in row.inner_text() and "play.jsonl" in row.inner_text()
    row.locator("a.try").click()  # the model next to its base model
    page.wait_for_url(f"{base}/playground?**")
    assert page.title() == "Playground · selftune"
    selects = page.locator(".column:not([hidden]) select.model")
    assert selects.count() == 2
    assert [selects.nth(i).input_value() for i in range(2)] == [job.fine_tuned_model, "tiny"]
    assert page.locator(f'.column select.model option[value^="{job.fine_tuned_model}:ckpt-step-"]').count() >= 2
    checkpoint = page.locator(f'.column select.model option[value^="{job.fine_tuned_model}:ckpt-step-"]').first \
        .get_attribute("value")
    page.click("#add-column")  # a checkpoint of the job as the third column
    page.locator(".column:not([hidden]) select.model").nth(2).select_option(checkpoint)
    assert "model=tiny" in page.url and "ckpt-step-" in page.url  # the address names the columns' models

    page.fill("#turns .turn textarea.content", f"Is my card {XSS} on its way?")
    page.fill("#max-tokens", "8")
    page.fill("#temperature", "0")
    page.click("#send")
    page.wait_for_function("() => [...document.querySelectorAll('.column:not([hidden])')]"
                           ".every(c => c.dataset.state === 'done' || c.dataset.state === 'error')", timeout=60_000)
    columns = page.locator(".column:not([hidden])")
    for i in range(3):
        column = columns.nth(i)
        assert column.get_attribute("data-state") == "done", column.inner_text()
        assert int(column.locator(".prompt-tokens").inner_text().replace(",", "")) > 10
        assert 1 <= int(column.locator(".answer-tokens").inner_text()) <= 8
        assert column.locator(".latency").inner_text().endswith(" s")
        assert column.locator(".finish").inner_text() in ("stop", "length")
    assert page.locator(".column img").count() == 0
    assert problems == []

    page.click("#add-turn")  # a second turn, then a malformed schema: every column says so, naming the field
    page.fill("#turns .turn:nth-child(2) textarea.content", "Thanks. And the fee?")
    page.click(".schema summary")
    page.fill("#json-schema", '{"type": "object",')
    page.click("#send")
    page.wait_for_function("() => [...document.querySelectorAll('.column:not([hidden])')]"
                           ".every(c => c.dataset.state === 'error')", timeout=30_000)
    assert columns.nth(0).locator(".column-problem").inner_text().startswith("JSON schema: not valid JSON at line 1")
    context.close()
    assert problems == [REFUSED.format(400, 'Bad Request')] * 3  # chromium logs each refused request; nothing else went wrong


def test_an_unknown_model_is_refused_in_its_own_column(shared_server, chromium):
    base = shared_server.url.removesuffix("/v1")
    context = chromium.new_context()
    page, problems = watched(context)
    page.goto(f"{base}/playground?model=tiny&model=ft:tiny:local::nope")
    page.fill("#turns .turn textarea.content", "Hello")
    page.fill("#max-tokens", "4")
    page.click("#send")
    page.wait_for_selector('.column[data-index="1"][data-state="error"]', timeout=60_000)
    page.wait_for_selector('.column[data-index="0"][data-state="done"]', timeout=60_000)
    assert page.inner_text('.column[data-index="1"] .column-problem') == "No such model: 'ft:tiny:local::nope'"
    context.close()
    assert problems == [REFUSED.format(404, 'Not Found')]  # the refused request, as chromium logs it; nothing else


def test_a_file_is_deleted_from_the_files_page(shared_server, chromium, tmp_path, chat_rows, write_jsonl):
    client = shared_server.client()
    rows = write_jsonl(tmp_path / "x.jsonl", chat_rows(12)).read_bytes()
    file = client.files.wait_for_processing(client.files.create(file=(f"{XSS}.jsonl", rows), purpose="fine-tune").id,
                                            poll_interval=0.1, max_wait_seconds=60)
    base = shared_server.url.removesuffix("/v1")
    context = chromium.new_context()
    page, problems = watched(context, confirm="Delete this file?")
    page.goto(f"{base}/files")
    row = page.locator(f'tr[data-file="{file.id}"]')
    assert row.locator("a.filename").inner_text() == f"{XSS}.jsonl"
    row.locator("a.filename").click()
    page.wait_for_url(f"{base}/files/{file.id}")
    page.select_option("#stats select", "tiny")
    page.click("#stats button[type=submit]")  # token statistics, on demand
    page.wait_for_selector("#stats .total-tokens")
    page.click(".actions button.delete")
    page.wait_for_url(f"{base}/files?deleted={file.id}")
    assert page.locator(f'tr[data-file="{file.id}"]').count() == 0
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file.id)
    context.close()
    assert problems == []
