"""The jobs page and the job page, in-process: what they list, filter and page, that every string a
user supplied is escaped, the curves' JSON (whole run, then only what is new), and the assets' budget."""

from __future__ import annotations

import math
import re
from pathlib import Path

import openai
import pytest

from selftune.api.fine_tuning.protocol import FineTuningJob, FineTuningJobEvent
from selftune.dashboard.curves import curves
from tests.helpers import XSS

STATIC = Path(__file__).resolve().parents[2] / "src" / "selftune" / "dashboard" / "static"


def test_every_user_string_is_escaped(dashboard, tmp_path, chat_rows, write_jsonl):
    with dashboard() as (browser, connect):
        client = connect()
        rows = write_jsonl(tmp_path / "x.jsonl", chat_rows(12)).read_bytes()
        created = client.files.create(file=(f"{XSS}.jsonl", rows), purpose="fine-tune")
        training = client.files.wait_for_processing(created.id, poll_interval=0.1, max_wait_seconds=60)
        assert training.filename == f"{XSS}.jsonl" and training.status == "processed"
        with pytest.raises(openai.BadRequestError):  # the API never takes markup as a suffix
            client.fine_tuning.jobs.create(model="tiny", training_file=training.id, suffix=XSS)
        job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id, metadata={XSS: XSS},
                                             suffix="x.y-z")
        page = browser()
        shown = page.get(f"/jobs/{job.id}")
        assert shown.text.count("&lt;img src=x onerror=alert(1)&gt;") == 3  # the file name, metadata key and value
        assert "default-src 'none'; script-src 'self'" in shown.headers["content-security-policy"]
        for path in ("/", f"/jobs/{job.id}", "/fragments/jobs", f"/jobs/{job.id}/summary",
                     f"/jobs/{job.id}/events", f"/jobs/{job.id}/checkpoints", f"/?metadata={XSS}={XSS}",
                     f"/?status={XSS}", f"/jobs/{XSS}"):
            answer = page.get(path)
            assert "<img" not in answer.text and "<script>" not in answer.text, path
            assert answer.headers["x-content-type-options"] == "nosniff", path


def test_jobs_are_listed_newest_first_paged_and_filtered(dashboard, tmp_path, chat_rows, upload):
    with dashboard() as (browser, connect):
        client = connect()
        training = upload(client, tmp_path / "t.jsonl", chat_rows(12))
        first, second, third = (client.fine_tuning.jobs.create(model="tiny", training_file=training.id,
                                                               metadata={"run": run}, suffix=f"run-{i}-sfx")
                                for i, run in enumerate(("1", "2", "2")))
        client.fine_tuning.jobs.pause(second.id)
        page = browser()

        def listed(query: str = "") -> list[str]:
            return re.findall(r'<tr data-job="([^"]+)">', page.get(f"/?{query}").text)

        assert listed() == [third.id, second.id, first.id]
        text = page.get("/").text
        for column in ("tiny", "supervised", "run-2-sfx", "status-validating_files", "status-paused"):
            assert column in text
        assert listed("limit=2") == [third.id, second.id]
        assert f'href="/?after={second.id}&amp;limit=2"' in page.get("/?limit=2").text  # the next page's link
        assert listed(f"limit=2&after={second.id}") == [first.id]
        assert listed("metadata=run%3D2") == [third.id, second.id]
        assert listed("status=paused") == [second.id]
        assert listed("status=paused&metadata=run%3D1") == []
        assert "Unknown status" in page.get("/?status=bogus").text
        assert "The metadata filter is key=value" in page.get("/?metadata=run").text
        fragment = page.get("/fragments/jobs?status=paused")
        assert 'hx-get="/fragments/jobs?status=paused" hx-trigger="every 2s"' in fragment.text  # polls its own filter
        assert "<html" not in fragment.text  # a fragment, not a page


def test_the_curves_json_is_the_whole_run_then_only_what_is_new(dashboard, tmp_path, chat_rows, upload):
    from sqlalchemy import select

    from selftune.jobs.events import add_event
    from selftune.store.tables import JobRow

    with dashboard() as (browser, connect):
        client = connect()
        training = upload(client, tmp_path / "t.jsonl", chat_rows(12))
        job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id)
        page = browser()
        empty = page.get(f"/jobs/{job.id}/curves.json").json()
        assert empty["run"] is None and empty["train"]["step"] == [] and empty["last_event"] is None

        db = page.app.state.jobs.db

        def relayed(*events: tuple[str, dict]) -> None:  # as the worker's relay writes them
            with db.transaction() as session:
                row = session.scalar(select(JobRow).where(JobRow.id == job.id))
                for message, data in events:
                    add_event(session, row, message, type="metrics" if "step" in data else "message", data=data)

        def step(n: int, loss: float) -> tuple[str, dict]:
            return f"Step {n}/4", {"step": n, "total_steps": 4, "train_loss": loss, "train_mean_token_accuracy": 0.5,
                                   "learning_rate": 1e-3, "tokens_per_second": 900.0}

        relayed(("Fine-tuning job started", {"hyperparameters": {"n_epochs": 2}, "total_steps": 4,
                                             "tokens_per_step": 80}), step(1, 2.0), step(2, 1.5))
        whole = page.get(f"/jobs/{job.id}/curves.json").json()
        assert whole["run"] == {"total_steps": 4, "n_epochs": 2, "steps_per_epoch": 2.0, "tokens_per_step": 80}
        assert whole["train"]["step"] == [1, 2] and whole["train"]["loss"] == [2.0, 1.5]
        assert 'max="4" value="2"' in page.get(f"/jobs/{job.id}").text  # the progress bar: step 2 of 4
        assert 'max="4" value="2"' in page.get("/").text

        relayed(step(3, 1.2), ("Step 3: validation", {"step": 3, "valid_loss": 1.3, "valid_mean_token_accuracy": 0.6}))
        new = page.get(f"/jobs/{job.id}/curves.json", params={"after": whole["last_event"]}).json()
        assert new["run"] is None and new["train"]["step"] == [3]  # only the new events
        assert new["valid"] == {"step": [3], "loss": [1.3], "accuracy": [0.6]}
        assert page.get(f"/jobs/{job.id}/curves.json", params={"after": new["last_event"]}).json()["train"]["step"] == []


def test_curves_turn_a_diverged_loss_into_a_gap():
    job = FineTuningJob(id="ftjob-1", created_at=1, hyperparameters={}, model="tiny", organization_id="local",
                        result_files=[], seed=0, status="running", training_file="file-1", method={"type": "supervised"})
    events = [FineTuningJobEvent(id=f"e{i}", created_at=1, level="info", message="", type="metrics",
                                 data={"step": i, "train_loss": loss}) for i, loss in ((1, 2.0), (2, math.nan))]
    answer = curves(job, events)
    assert answer["train"]["loss"] == [2.0, None] and answer["train"]["accuracy"] == [None, None]
    assert answer["last_event"] == "e2" and answer["status"] == "running" and answer["finished"] is False


def test_static_assets_are_vendored_with_their_licences_and_small(dashboard):
    sizes = {path.name: path.stat().st_size for path in STATIC.rglob("*") if path.is_file()}
    assert {"htmx.min.js", "htmx.LICENSE", "uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"} <= set(sizes)
    served = [name for name in sizes if name.endswith((".js", ".css", ".svg"))]
    assert sum(sizes[name] for name in served) < 300 * 1024
    with dashboard() as (browser, _):
        page = browser()
        for path in ("/static/vendor/htmx.min.js", "/static/vendor/uPlot.iife.min.js", "/static/job.js",
                     "/static/dashboard.js", "/static/dashboard.css", "/static/favicon.svg"):
            assert page.get(path).status_code == 200, path
