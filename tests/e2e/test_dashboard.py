"""The dashboard in a real browser (Debian's chromium through playwright) against a real server: the
jobs page, a job's curves growing while it trains, pause / resume / cancel from its buttons, a finished
job's page, sign-in with one key that never shows the other key's jobs, and a file named like markup
that runs no script. Every page is watched for console errors, page errors and dialogs."""

from __future__ import annotations

import pytest

from tests.helpers import TWO_KEYS, XSS, watched

# ~25 s of browser and training: in the slow suite (CI runs it); the dashboard's rules are tested in-process
# in tests/dashboard/
pytestmark = pytest.mark.slow

LONG = {"n_epochs": 20, "batch_size": 1}  # ~2,400 tiny steps: long enough to click on while it trains


def points(page, chart: str = "chart-loss") -> int:
    return int(page.get_attribute(f"#{chart}", "data-points"))


@pytest.fixture(scope="module")
def jobs(shared_server, tmp_path_factory, chat_rows, upload, write_jsonl):
    """On the shared server: a small job trained on a file named like markup (with that string as
    metadata too)."""
    tmp = tmp_path_factory.mktemp("dashboard")
    client = shared_server.client()
    rows = write_jsonl(tmp / "x.jsonl", chat_rows(12)).read_bytes()
    marked = client.files.wait_for_processing(client.files.create(file=(f"{XSS}.jsonl", rows), purpose="fine-tune").id,
                                              poll_interval=0.1, max_wait_seconds=60)
    validation = upload(client, tmp / "valid.jsonl", chat_rows(10, seed=3))
    small = client.fine_tuning.jobs.create(model="tiny", training_file=marked.id, validation_file=validation.id,
                                           metadata={XSS: XSS}, hyperparameters={"n_epochs": 2}, seed=0,
                                           suffix="small-run")
    return client, small


@pytest.fixture
def long_job(jobs, tmp_path, chat_rows, upload):
    """A long job to click on while it trains (cancelled at the end, whatever happens)."""
    client, _ = jobs
    long = client.fine_tuning.jobs.create(model="tiny", training_file=upload(client, tmp_path / "long.jsonl",
                                                                             chat_rows(120)).id,
                                          hyperparameters=LONG, suffix="long-run")
    yield long
    if client.fine_tuning.jobs.retrieve(long.id).status not in ("succeeded", "failed", "cancelled"):
        client.fine_tuning.jobs.cancel(long.id)


def test_the_jobs_page_lists_the_jobs_and_refreshes(shared_server, chromium, jobs):
    _, small = jobs
    context = chromium.new_context()
    page, problems = watched(context)
    page.goto(shared_server.url.removesuffix("/v1") + "/")
    assert page.title() == "Jobs · selftune"
    page.wait_for_selector(f'tr[data-job="{small.id}"]')
    assert "small-run" in page.inner_text(f'tr[data-job="{small.id}"]')
    page.wait_for_function("() => document.querySelector('#jobs progress') !== null", timeout=60_000)  # a poll drew it
    context.close()
    assert problems == []


def test_the_loss_curve_grows_while_it_trains_and_the_buttons_pause_resume_and_cancel(shared_server, chromium, jobs,
                                                                                      long_job):
    client, _ = jobs
    long = long_job
    context = chromium.new_context()
    page, problems = watched(context, confirm="Cancel this job?")
    page.goto(shared_server.url.removesuffix("/v1") + f"/jobs/{long.id}")
    grows = "([id, n]) => Number(document.getElementById(id).dataset.points) > n"
    page.wait_for_function(grows, arg=["chart-loss", 0], timeout=120_000)
    page.wait_for_function(grows, arg=["chart-loss", points(page)], timeout=30_000)  # new points, no reload
    assert page.locator("#chart-loss canvas").count() >= 1 and page.locator("#chart-throughput canvas").count() >= 1
    page.select_option("#x-axis", "epoch")
    page.check("#log-scale")
    assert page.get_attribute("#curves", "data-epoch-marks") == "19"  # 20 epochs: 19 boundaries

    page.click("button.pause")
    page.wait_for_selector('#summary[data-status="paused"]', timeout=60_000)
    assert client.fine_tuning.jobs.retrieve(long.id).status == "paused"
    page.click("button.resume")
    page.wait_for_selector('#summary[data-status="running"]', timeout=60_000)  # a worker took it again
    page.click("button.cancel")
    page.wait_for_selector('#summary[data-status="cancelled"]', timeout=30_000)
    page.wait_for_selector('#curves[data-complete="true"]', timeout=30_000)  # the last poll, then no more
    assert client.fine_tuning.jobs.retrieve(long.id).status == "cancelled"
    messages = [e.message for e in client.fine_tuning.jobs.list_events(long.id, limit=100)]
    assert any(m.startswith("Fine-tuning job paused at step") for m in messages), messages
    assert "Fine-tuning job resumed" in messages
    context.close()
    assert problems == []


def test_a_finished_jobs_page_keeps_its_curves_and_runs_no_injected_script(shared_server, chromium, jobs, wait_for):
    client, small = jobs
    job = wait_for(client, small.id)
    assert job.status == "succeeded", job.error
    context = chromium.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page, problems = watched(context)
    base = shared_server.url.removesuffix("/v1")
    page.goto(f"{base}/jobs/{job.id}")
    page.wait_for_selector('#curves[data-complete="true"]')
    steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job.id, limit=100)
             if e.type == "metrics" and "train_loss" in e.data]
    assert points(page, "chart-learning-rate") == len(steps) == max(steps)  # the whole run
    assert points(page, "chart-loss") > len(steps)  # and the validation points
    assert page.locator(".filename").first.inner_text() == f"{XSS}.jsonl"  # shown as text
    assert XSS in page.inner_text(".metadata")
    assert job.fine_tuned_model in page.inner_text("#summary")
    checkpoint = page.locator("#checkpoints code.model").first.inner_text()
    assert checkpoint.startswith(job.fine_tuned_model + ":ckpt-step-")
    page.locator("#checkpoints button.copy").first.click()
    page.wait_for_function("() => document.querySelector('#checkpoints button.copy').textContent === 'Copied'")
    assert page.evaluate("() => navigator.clipboard.readText()") == checkpoint
    csv = page.request.get(base + page.get_attribute("a.results", "href"))
    assert csv.status == 200 and csv.text().startswith("step,train_loss")
    page.goto(base + "/")  # the jobs page with the same job on it
    page.wait_for_selector(f'tr[data-job="{job.id}"]')
    context.close()
    assert problems == []


def test_signing_in_with_one_key_never_shows_the_other_keys_jobs(new_server, chromium, tmp_path, chat_rows, upload):
    server = new_server(args=("--no-worker",), SELFTUNE_API_KEYS=TWO_KEYS).start()
    try:
        made = {}
        for key, suffix in (("key-a", "alpha"), ("key-b", "beta")):
            client = server.client(key)
            training = upload(client, tmp_path / f"{suffix}.jsonl", chat_rows(12))
            made[key] = client.fine_tuning.jobs.create(model="tiny", training_file=training.id, suffix=suffix).id
        base = server.url.removesuffix("/v1")
        context = chromium.new_context()
        page, problems = watched(context)
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.goto(base + "/")
        assert page.url == base + "/login"
        page.fill('input[name="api_key"]', "key-a")
        page.click('button[type="submit"]')
        page.wait_for_url(base + "/")
        page.wait_for_selector(f'tr[data-job="{made["key-a"]}"]')
        assert made["key-b"] not in page.content() and "key-a" not in page.content()
        page.goto(f"{base}/jobs/{made['key-a']}")
        assert "key-a" not in page.content()
        assert page.request.get(f"{base}/jobs/{made['key-b']}").status == 404  # as the API: absent
        (cookie,) = context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("selftune_session", True, "Strict")
        assert "key-" not in cookie["value"] and not any("key-" in url for url in urls)
        context.close()
        assert problems == []
    finally:
        server.stop()
