"""The Evaluations pages and /v1/evaluations: recorded runs listed with their figures to their own
organisation only, the stored report under its own script-free policy, user strings shown as text, the
form's refusals naming their field, and a run started from the dashboard on the tiny model, watched to
the end, whose run key is refused afterwards."""

from __future__ import annotations

import json
import re
import time

import pytest

from selftune.api.evaluations.protocol import EvalStatus
from tests.helpers import TWO_KEYS, XSS, ThreadedServer, csrf_of, finished_run, sign_in

try:  # the HTTP client openai and starlette's TestClient use, under its current name
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx


@pytest.fixture
def keyed(dashboard):
    with dashboard(SELFTUNE_API_KEYS=TWO_KEYS) as running:
        yield running


def test_a_recorded_run_is_listed_with_its_figures_to_its_organisation_only(keyed, tmp_path):
    browser, _ = keyed
    a, b = browser(), browser()
    sign_in(a, "key-a"), sign_in(b, "key-b")
    service = a.app.state.evaluations
    config, report = finished_run(tmp_path, ["ft:tiny:org-a:x:ftjob-1", "tiny"])
    evaluation = service.record("org-a", config, report, config.out)
    assert evaluation.id.startswith("eval-") and evaluation.status == EvalStatus.SUCCEEDED
    assert [f.score for f in evaluation.figures] == [0.81, pytest.approx(0.71)]  # the report's, not recomputed
    assert "api_key" not in json.dumps(evaluation.config)  # keys are never kept

    listed = a.get("/evals")
    assert listed.status_code == 200 and evaluation.id in listed.text
    assert "81.0%" in listed.text and "test.jsonl" in listed.text and "ft:tiny:org-a:x:ftjob-1" in listed.text
    page = a.get(f"/evals/{evaluation.id}")
    assert page.status_code == 200 and "$0.0123" in page.text and "0.25 s" in page.text
    assert f"/evals/{evaluation.id}/report.html" in page.text and "hx-get" not in page.text  # finished: no polling

    report_page = a.get(f"/evals/{evaluation.id}/report.html")
    assert report_page.status_code == 200 and "What fine-tuning bought" in report_page.text
    policy = report_page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy and "script-src" not in policy
    assert "style-src 'unsafe-inline'" in policy  # the report's <style> and its SVGs' style attributes
    assert report_page.headers["x-content-type-options"] == "nosniff"
    assert a.get(f"/evals/{evaluation.id}/results.jsonl").status_code == 200
    assert a.get(f"/evals/{evaluation.id}/server.log").status_code == 404

    # another organisation: as if it did not exist, on every page and in the API
    assert evaluation.id not in b.get("/evals").text
    for path in (f"/evals/{evaluation.id}", f"/evals/{evaluation.id}/report.html",
                 f"/evals/{evaluation.id}/report.json"):
        assert b.get(path).status_code == 404, path
    api = browser()
    mine = api.get("/v1/evaluations", headers={"Authorization": "Bearer key-a"}).json()
    assert [e["id"] for e in mine["data"]] == [evaluation.id] and mine["data"][0]["figures"][0]["score"] == 0.81
    assert api.get("/v1/evaluations", headers={"Authorization": "Bearer key-b"}).json()["data"] == []
    assert api.get(f"/v1/evaluations/{evaluation.id}", headers={"Authorization": "Bearer key-b"}).status_code == 404
    assert api.get("/v1/evaluations").status_code == 401

    assert [e.id for e in service.for_models("org-a", ["tiny"])] == [evaluation.id]
    assert service.for_models("org-a", ["other"]) == [] and service.for_models("org-b", ["tiny"]) == []


def test_a_batch_run_shows_latency_as_not_measured(dashboard, tmp_path):
    """``selftune eval --batch`` times no request on its own: the page and the API say so, not 0.00 s."""
    from selftune.evals.results import NOT_MEASURED

    with dashboard() as (browser, _):
        page = browser()
        config, report = finished_run(tmp_path, ["tiny"])
        report = report.model_copy(update={"batch": True, "models": [
            r.model_copy(update={"latency_s": NOT_MEASURED}) for r in report.models]})
        evaluation = page.app.state.evaluations.record("local", config, report, config.out)
        assert evaluation.figures[0].latency_p50_s is None
        shown = page.get(f"/evals/{evaluation.id}")
        assert shown.status_code == 200 and "— (batch)" in shown.text and "$0.0123" in shown.text
        listed = page.get("/v1/evaluations", headers={"Authorization": "Bearer local"}).json()
        assert listed["data"][0]["figures"][0]["latency_p50_s"] is None


def test_the_list_is_newest_first_and_paged(dashboard, tmp_path):
    with dashboard() as (browser, _):
        page = browser()
        service = page.app.state.evaluations
        config, report = finished_run(tmp_path, ["tiny"])
        ids = [service.record("local", config, report, config.out).id for _ in range(3)]
        first, more = service.list("local", None, 2)
        assert [e.id for e in first] == ids[:0:-1] and more
        rest, more = service.list("local", first[-1].id, 2)
        assert [e.id for e in rest] == ids[:1] and not more
        deleted = page.get(f"/evals/{ids[0]}")
        token = csrf_of(deleted)
        assert page.post(f"/evals/{ids[0]}/delete", data={"csrf_token": token}).status_code == 303
        assert page.get(f"/evals/{ids[0]}").status_code == 404
        assert not (service.root / ids[0]).exists()


def test_user_strings_are_shown_as_text(dashboard, tmp_path, chat_rows, upload, write_jsonl):
    with dashboard() as (browser, connect):
        page = browser()
        config, report = finished_run(tmp_path, [XSS], data_name=f"{XSS}.jsonl")
        evaluation = page.app.state.evaluations.record("local", config, report, config.out)
        client = connect()
        rows = write_jsonl(tmp_path / "x.jsonl", chat_rows(12)).read_bytes()
        client.files.wait_for_processing(client.files.create(file=(f"{XSS}.jsonl", rows), purpose="fine-tune").id,
                                         poll_interval=0.1, max_wait_seconds=60)
        for path in ("/evals", f"/evals/{evaluation.id}", "/evals/new"):
            text = page.get(path).text
            assert XSS not in text and "&lt;img src=x onerror=alert(1)&gt;" in text, path


def test_the_form_names_the_field_of_each_bad_choice(dashboard, tmp_path, chat_rows, upload):
    with dashboard() as (browser, connect):
        page = browser()
        token = csrf_of(page.get("/evals/new"))
        data = upload(connect(), tmp_path / "test.jsonl", chat_rows(12))
        refused = page.post("/evals/new", data={"csrf_token": token, "few_shot": "x", "limit": "0",
                                                "grader": "nope"})
        assert refused.status_code == 400
        for field in ("Data file:", "Models: tick at least one", "Few-shot count:", "Limit:", "Grader:"):
            assert field in refused.text, field
        refused = page.post("/evals/new", data={"csrf_token": token, "data_file": data.id, "models": ["gpt-9"],
                                                "few_shot": "3", "few_shot_file": data.id})
        assert refused.status_code == 400
        assert "Models: gpt-9 is not one of your models." in refused.text
        assert "Few-shot source file: must differ from the data file" in refused.text
        assert f'value="{data.id}" selected' in refused.text  # the choices stay
        assert page.post("/evals/new", data={"data_file": data.id, "models": ["tiny"]}).status_code == 403  # CSRF
        assert page.app.state.evaluations.list("local", None, 10) == ([], False)


def test_a_run_started_from_the_dashboard_finishes_and_its_run_key_dies_with_it(monkeypatch, service_env, tmp_path,
                                                                               chat_rows, write_jsonl):
    """A real server in this process (the run calls it over HTTP), in keyed mode: the run authenticates
    with a key only the server knew, refused once the run is over."""
    from selftune.api.app import create_app
    from selftune.config import get_settings

    for name, value in {**service_env, "SELFTUNE_API_KEYS": TWO_KEYS}.items():
        monkeypatch.setenv(name, value)
    app = create_app(get_settings(), embedded_worker=False)
    server = ThreadedServer(app).start()
    try:
        root = server.url.removesuffix("/v1")
        issued = []
        run_keys = app.state.run_keys
        issue = run_keys.issue
        monkeypatch.setattr(run_keys, "issue", lambda org: issued.append(issue(org)) or issued[-1])
        rows = write_jsonl(tmp_path / "test.jsonl", chat_rows(12)).read_bytes()
        with httpx.Client(base_url=root, timeout=60) as page:
            uploaded = page.post("/v1/files", headers={"Authorization": "Bearer key-a"},
                                 files={"file": ("test.jsonl", rows)}, data={"purpose": "fine-tune"}).json()
            deadline = time.time() + 60
            while page.get(f"/v1/files/{uploaded['id']}", headers={"Authorization": "Bearer key-a"}
                           ).json()["status"] != "processed" and time.time() < deadline:
                time.sleep(0.1)
            sign_in(page, "key-a")
            token = csrf_of(page.get("/evals/new"))
            started = page.post("/evals/new", data={"csrf_token": token, "data_file": uploaded["id"],
                                                    "models": ["tiny"], "limit": "2", "grader": "exact"})
            assert started.status_code == 303, started.text
            eval_url = started.headers["location"]
            eval_id = eval_url.rsplit("/", 1)[-1]
            while True:
                status = page.get(f"{eval_url}/status")
                state = re.search(r'data-status="(\w+)"', status.text).group(1)
                if state in ("succeeded", "failed") or time.time() > deadline + 120:
                    break
                assert "hx-get" in status.text  # polled while it runs
                time.sleep(0.3)
            assert state == "succeeded", status.text
            assert "Headline figures" in status.text and "hx-get" not in status.text
            assert page.get(f"{eval_url}/report.html").status_code == 200
            api = page.get(f"/v1/evaluations/{eval_id}", headers={"Authorization": "Bearer key-a"}).json()
            assert api["progress"] == {"done": 2, "total": 2} and api["figures"][0]["n"] == 2
            assert api["config"]["data"] == "test.jsonl"  # the upload's name, not the server's path
            assert len(issued) == 1 and issued[0] not in json.dumps(api)
            refused = page.get("/v1/models", headers={"Authorization": f"Bearer {issued[0]}"})
            assert refused.status_code == 401  # the run is over: its key is gone
            assert page.get(f"/v1/evaluations/{eval_id}", headers={"Authorization": "Bearer key-b"}).status_code == 404
    finally:
        server.stop()


def test_a_run_that_fails_says_why_and_stops_polling(dashboard, tmp_path):
    with dashboard() as (browser, _):
        page = browser()
        service = page.app.state.evaluations
        started = service.start("local", base_url="http://127.0.0.1:9/v1", data=tmp_path / "gone.jsonl",
                                data_name="gone.jsonl", models=["tiny"])
        assert started.status == EvalStatus.QUEUED
        deadline = time.time() + 30
        while service.retrieve("local", started.id).status not in (EvalStatus.FAILED, EvalStatus.SUCCEEDED):
            assert time.time() < deadline
            time.sleep(0.05)
        failed = service.retrieve("local", started.id)
        assert failed.status == EvalStatus.FAILED and failed.error and not failed.has_report
        shown = page.get(f"/evals/{started.id}")
        assert "gone.jsonl" in shown.text and 'role="alert"' in shown.text and "hx-get" not in shown.text
        assert page.get(f"/evals/{started.id}/report.html").status_code == 404


def test_selftune_eval_records_its_run_under_its_key_s_organisation(monkeypatch, tmp_path, capsys):
    """What the command does after evaluate(): record in SELFTUNE_HOME's store, print the id and address;
    a key that belongs to no organisation here is not recorded, and the command says why."""
    from selftune.api.evaluations.service import open_service
    from selftune.cli import _record_evaluation

    monkeypatch.setenv("SELFTUNE_API_KEYS", TWO_KEYS)
    config, report = finished_run(tmp_path, ["tiny"])
    config = config.model_copy(update={"base_url": "http://127.0.0.1:8123/v1"})
    _record_evaluation(config, report)
    printed = capsys.readouterr()
    service = open_service()
    [recorded], _ = service.list("org-a", None, 10)
    assert f"evaluation: {recorded.id} · http://127.0.0.1:8123/evals/{recorded.id}" in printed.out
    assert (service.root / recorded.id / "report.html").is_file()
    _record_evaluation(config.model_copy(update={"api_key": "key-unknown"}), report)
    assert "not recorded in the store: its API key is none of SELFTUNE_API_KEYS" in capsys.readouterr().err
    assert len(service.list("org-a", None, 10)[0]) == 1 and service.list("org-b", None, 10)[0] == []
    service.db.dispose()


def test_a_run_key_reaches_the_api_only_while_it_lasts_and_never_signs_in(keyed):
    browser, _ = keyed
    page = browser()
    run_keys = page.app.state.run_keys
    key = run_keys.issue("org-a")
    assert page.get("/v1/evaluations", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert sign_in(page, key).status_code == 401  # the dashboard's sign-in takes configured keys only
    run_keys.revoke(key)
    assert page.get("/v1/evaluations", headers={"Authorization": f"Bearer {key}"}).status_code == 401
