"""The compare page in-process: 2 to 8 jobs from the address, the settings that differ (and all of
them), a clear message for too few, too many, unknown or another organisation's jobs, user strings
escaped, the jobs page's "Compare selected" boxes (kept ticked across polls), and the recorded
evaluations of the jobs' models side by side."""

from __future__ import annotations

import re

from sqlalchemy import select

from selftune.jobs.events import add_event
from selftune.store.tables import JobRow
from tests.helpers import XSS, csrf_of, finished_run


def rows_of(html: str, table: str) -> dict[str, list[str]]:
    """A settings table as ``setting -> cells`` (the cells' text, tags stripped)."""
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    rows = {}
    for name, cells in re.findall(r'<tr data-setting="([^"]+)"[^>]*>(.*?)</tr>', body, re.S):
        rows[name] = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", cells, re.S)]
    return rows


def relay(db, job_id: str, events: list[tuple[str, dict]]) -> None:
    """Events as the worker's relay writes them (so the job has curves and final losses)."""
    with db.transaction() as session:
        row = session.scalar(select(JobRow).where(JobRow.id == job_id))
        for message, data in events:
            add_event(session, row, message, type="metrics" if "step" in data else "message", data=data)


def run(n_steps: int, loss: float) -> list[tuple[str, dict]]:
    events = [("Fine-tuning job started", {"hyperparameters": {"n_epochs": 1}, "total_steps": n_steps,
                                           "tokens_per_step": 64})]
    for step in range(1, n_steps + 1):
        events.append((f"Step {step}/{n_steps}", {"step": step, "total_steps": n_steps, "train_loss": loss / step,
                                                  "train_mean_token_accuracy": 0.5, "learning_rate": 1e-3,
                                                  "tokens_per_second": 900.0}))
        if step == 1:  # validation only after the first step: the final validation loss is 100+ events back
            events.append(("validation", {"step": 1, "valid_loss": loss / n_steps + 0.1,
                                          "valid_mean_token_accuracy": 0.6}))
    return events


def test_two_jobs_side_by_side_with_the_settings_that_differ(dashboard, tmp_path, chat_rows, upload):
    with dashboard() as (browser, connect):
        client = connect()
        training = upload(client, tmp_path / "t.jsonl", chat_rows(12))
        first = client.fine_tuning.jobs.create(model="tiny", training_file=training.id, suffix="first.run", seed=1,
                                               hyperparameters={"n_epochs": 1})
        second = client.fine_tuning.jobs.create(model="tiny", training_file=training.id, suffix="second", seed=2,
                                                hyperparameters={"n_epochs": 3}, metadata={"task": "cards"})
        page = browser()
        relay(page.app.state.jobs.db, first.id, run(200, 100.0))
        relay(page.app.state.jobs.db, second.id, run(300, 150.0))

        shown = page.get("/compare", params=[("job", first.id), ("job", second.id)])
        assert shown.status_code == 200
        html = shown.text
        assert re.findall(r'<li class="series-(\d)" data-job="([^"]+)"', html) == [("0", first.id), ("1", second.id)]
        assert f'data-label="{first.id} (first.run)"' in html  # the legend names the job id and its suffix
        for chart in ("train-loss", "valid-loss", "train-accuracy", "valid-accuracy", "learning-rate", "throughput"):
            assert f'id="chart-{chart}"' in html
        assert '<script src="/static/charts.js" defer></script>' in html and "/static/compare.js" in html
        for path in ("/static/charts.js", "/static/compare.js", "/static/compare.css"):
            assert page.get(path).status_code == 200, path
        assert f'<link rel="preload" href="/jobs/{second.id}/curves.json" as="fetch"' in html
        differing = rows_of(html, "differing")
        assert differing["suffix"] == ["first.run", "second"]
        assert differing["seed"] == ["1", "2"]
        assert differing["n_epochs"] == ["1", "3"]
        assert differing["metadata task"] == ["—", "cards"]
        assert not {"base model", "training file", "final training loss"} & set(differing)  # the same for both
        assert not {"created", "fine-tuned model"} & set(differing)  # always different: in all settings only
        every = rows_of(html, "all-settings")
        assert every["base model"] == ["tiny", "tiny"] and every["method"] == ["supervised", "supervised"]
        assert every["training file"] == [f"t.jsonl ({training.id})"] * 2
        assert every["batch_size"] == ["auto", "auto"] and every["created"][0].endswith(" UTC")
        assert every["final training loss"] == ["0.5", "0.5"] and every["final validation loss"] == ["0.6", "0.6"]
        assert "No evaluation has been run on these jobs' fine-tuned models yet" in html
        # the same ids written job=a,b; a repeated id counts once
        again = page.get(f"/compare?job={first.id},{second.id}&job={first.id}")
        assert again.status_code == 200 and rows_of(again.text, "differing") == differing


def test_too_few_too_many_unknown_and_missing_jobs_get_a_clear_message(dashboard, tmp_path, chat_rows, upload):
    with dashboard() as (browser, connect):
        client = connect()
        training = upload(client, tmp_path / "t.jsonl", chat_rows(12))
        job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id)
        page = browser()
        empty = page.get("/compare")
        assert empty.status_code == 200 and "Tick 2 to 8 jobs" in empty.text and "compare.js" not in empty.text
        one = page.get("/compare", params={"job": job.id})
        assert one.status_code == 400 and "Compare takes 2 to 8 jobs (parameter job); 1 was given." in one.text
        nine = page.get("/compare", params=[("job", f"ftjob-{i}") for i in range(9)])
        assert nine.status_code == 400 and "9 were given" in nine.text
        unknown = page.get("/compare", params=[("job", job.id), ("job", "ftjob-nope")])
        assert unknown.status_code == 404 and "Parameter job:" in unknown.text and "ftjob-nope" in unknown.text
        assert "Traceback" not in unknown.text
        assert page.get(f"/jobs/{job.id}/curves.json", params={"after": "ftevent-nope"}).status_code == 404
        markup = page.get("/compare", params=[("job", job.id), ("job", XSS)])
        assert markup.status_code == 404 and "<img" not in markup.text


def test_another_organisations_job_is_not_found(dashboard, tmp_path, chat_rows, upload):
    with dashboard(SELFTUNE_API_KEYS="key-a:org-a,key-b:org-b") as (browser, connect):
        made = {}
        for key in ("key-a", "key-b"):
            client = connect(key)
            training = upload(client, tmp_path / f"{key}.jsonl", chat_rows(12))
            made[key] = [client.fine_tuning.jobs.create(model="tiny", training_file=training.id).id for _ in range(2)]
        page = browser()
        assert page.get("/compare").headers["location"] == "/login"
        form = page.get("/login")
        page.post("/login", data={"api_key": "key-a", "csrf_token": csrf_of(form)})
        assert page.get("/compare", params=[("job", j) for j in made["key-a"]]).status_code == 200
        theirs = page.get("/compare", params=[("job", made["key-a"][0]), ("job", made["key-b"][0])])
        assert theirs.status_code == 404 and "Parameter job:" in theirs.text


def test_user_strings_are_shown_as_text(dashboard, tmp_path, chat_rows, write_jsonl):
    with dashboard() as (browser, connect):
        client = connect()
        rows = write_jsonl(tmp_path / "x.jsonl", chat_rows(12)).read_bytes()
        training = client.files.wait_for_processing(
            client.files.create(file=(f"{XSS}.jsonl", rows), purpose="fine-tune").id, poll_interval=0.1,
            max_wait_seconds=60)
        jobs = [client.fine_tuning.jobs.create(model="tiny", training_file=training.id, metadata={XSS: value})
                for value in (XSS, "plain")]
        html = browser().get("/compare", params=[("job", j.id) for j in jobs]).text
        assert "<img" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;.jsonl" in html  # the file name
        assert "metadata &lt;img src=x onerror=alert(1)&gt;" in html  # the metadata key, and its value
        assert rows_of(html, "differing")["metadata &lt;img src=x onerror=alert(1)&gt;"] == [
            "&lt;img src=x onerror=alert(1)&gt;", "plain"]


def test_the_jobs_page_ticks_jobs_for_compare_and_keeps_them_ticked(dashboard, tmp_path, chat_rows, upload):
    with dashboard() as (browser, connect):
        client = connect()
        training = upload(client, tmp_path / "t.jsonl", chat_rows(12))
        first, second = (client.fine_tuning.jobs.create(model="tiny", training_file=training.id) for _ in range(2))
        page = browser()
        html = page.get("/").text
        assert '<form id="compare-form" class="compare-form" method="get" action="/compare">' in html
        assert html.count('form="compare-form" name="job"') == 2
        assert f'name="job" value="{first.id}"' in html and " checked" not in html
        polled = page.get("/fragments/jobs", params={"job": first.id}).text  # a poll sends the ticked boxes
        assert re.search(rf'value="{first.id}"\s+aria-label="compare {first.id}" checked>', polled)
        assert not re.search(rf'value="{second.id}"\s+aria-label="compare {second.id}" checked>', polled)


def test_evaluations_of_the_jobs_models_side_by_side(dashboard, tmp_path, chat_rows, upload):
    with dashboard() as (browser, connect):
        client = connect()
        training = upload(client, tmp_path / "t.jsonl", chat_rows(12))
        jobs = [client.fine_tuning.jobs.create(model="tiny", training_file=training.id) for _ in range(2)]
        page = browser()
        models = [f"ft:tiny:local::m{i}" for i in range(2)]
        with page.app.state.jobs.db.transaction() as session:  # as if both had finished training
            for job, model in zip(jobs, models, strict=True):
                session.scalar(select(JobRow).where(JobRow.id == job.id)).fine_tuned_model = model
        config, report = finished_run(tmp_path, [models[1], "tiny"], data_name=f"{XSS}.jsonl")
        evaluation = page.app.state.evaluations.record("local", config, report, config.out)
        (tmp_path / "other").mkdir()
        other, other_report = finished_run(tmp_path / "other", ["ft:tiny:local::elsewhere"])
        page.app.state.evaluations.record("local", other, other_report, other.out)  # another model's: not shown
        html = page.get("/compare", params=[("job", j.id) for j in jobs]).text
        section = html.split('id="evaluations"', 1)[1]
        assert section.count("data-evaluation=") == 3 and f'href="/evals/{evaluation.id}"' in section
        assert "&lt;img src=x onerror=alert(1)&gt;.jsonl" in section and "<img" not in section
        cells = re.findall(r"<td>(.*?)</td>", section)
        assert cells == ["classification (95% CI)", "—", "0.810 [0.700, 0.900]",
                         "latency p50", "—", "0.25 s",
                         "cost / 1,000 requests", "—", "$0.0123 (local)"]
