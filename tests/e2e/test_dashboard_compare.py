"""The compare page in a real browser against a real server: two tiny jobs ticked on the jobs page
(still ticked after the table's 2-second refresh), compared, both drawn in every chart, the settings
that differ listed, and no console errors."""

from __future__ import annotations

import pytest

from tests.helpers import watched

pytestmark = pytest.mark.slow  # ~20 s of training and browser: the in-process tests are tests/dashboard/


@pytest.fixture(scope="module")
def two_jobs(shared_server, tmp_path_factory, chat_rows, upload, wait_for):
    tmp = tmp_path_factory.mktemp("compare")
    client = shared_server.client()
    training = upload(client, tmp / "train.jsonl", chat_rows(12))
    jobs = [client.fine_tuning.jobs.create(model="tiny", training_file=training.id, seed=seed, suffix=suffix,
                                           hyperparameters={"n_epochs": 1, "learning_rate_multiplier": lr})
            for seed, suffix, lr in ((1, "cmp-a", 1.0), (2, "cmp-b", 2.0))]
    done = [wait_for(client, job.id) for job in jobs]
    assert [job.status for job in done] == ["succeeded", "succeeded"], [job.error for job in done]
    return done


def test_tick_two_jobs_compare_them_and_see_both_curves_and_what_differs(shared_server, chromium, two_jobs):
    first, second = two_jobs
    base = shared_server.url.removesuffix("/v1")
    context = chromium.new_context()
    page, problems = watched(context)
    page.goto(base + "/")
    for job in two_jobs:
        page.check(f'tr[data-job="{job.id}"] input[name="job"]')
    with page.expect_response(lambda r: "/fragments/jobs" in r.url) as polled:  # the table refreshes...
        pass
    assert sorted(polled.value.url.split("?", 1)[1].split("&")) == sorted(f"job={j.id}" for j in two_jobs)
    page.wait_for_timeout(300)
    for job in two_jobs:  # ...and the boxes stay ticked
        assert page.is_checked(f'tr[data-job="{job.id}"] input[name="job"]')
    page.click("#compare-form button[type=submit]")
    page.wait_for_url("**/compare?job=*")
    assert page.title() == "Compare · selftune"
    assert sorted(page.url.split("?", 1)[1].split("&")) == sorted(f"job={j.id}" for j in two_jobs)
    page.wait_for_selector('#curves[data-complete="true"]')
    for chart in ("train-loss", "learning-rate", "throughput"):
        assert page.get_attribute(f"#chart-{chart}", "data-series") == "2", chart
        assert page.locator(f"#chart-{chart} canvas").count() == 1
    legend = page.inner_text("#chart-train-loss .u-legend")
    assert f"{first.id} (cmp-a)" in legend and f"{second.id} (cmp-b)" in legend
    differing = page.inner_text("#differing")
    for setting in ("suffix", "seed", "learning_rate_multiplier"):
        assert setting in differing
    assert "base model" not in differing
    page.select_option("#x-axis", "epoch")
    page.check("#log-scale")
    assert page.get_attribute("#chart-train-loss", "data-series") == "2"
    context.close()
    assert problems == []
