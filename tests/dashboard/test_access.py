"""Who sees what: sign-in with an API key (never stored in the browser or shown), the session cookie,
organisations kept apart exactly as in the API, and CSRF on every state-changing request."""

from __future__ import annotations

import pytest

from tests.helpers import TWO_KEYS, csrf_of, sign_in


def queued_job(connect, tmp_path, chat_rows, upload, key: str, suffix: str):
    client = connect(key)
    training = upload(client, tmp_path / f"{suffix}.jsonl", chat_rows(12))
    return client.fine_tuning.jobs.create(model="tiny", training_file=training.id, suffix=suffix)


@pytest.fixture
def keyed(dashboard):
    with dashboard(SELFTUNE_API_KEYS=TWO_KEYS) as running:
        yield running


def test_pages_need_a_sign_in_when_keys_are_set(keyed):
    browser, _ = keyed
    page = browser()
    for path in ("/", "/jobs/ftjob-x", "/files/file-x/content"):
        answer = page.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/login"), path
    poll = page.get("/fragments/jobs", headers={"HX-Request": "true"})
    assert (poll.status_code, poll.headers["HX-Redirect"]) == (401, "/login")
    assert page.get("/jobs/ftjob-x/curves.json").status_code == 401


def test_a_bad_key_is_refused_and_not_echoed(keyed):
    browser, _ = keyed
    page = browser()
    refused = sign_in(page, "key-wrong-secret")
    assert refused.status_code == 401 and "That API key is not valid." in refused.text
    assert "key-wrong-secret" not in refused.text
    assert page.get("/").status_code == 303  # still signed out


def test_signing_in_sets_a_strict_httponly_cookie_holding_a_session_id_not_the_key(keyed):
    browser, _ = keyed
    page = browser()
    before = page.cookies.get("selftune_session")
    signed_in = sign_in(page, "key-a")
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/")
    cookie = signed_in.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    session = page.cookies.get("selftune_session")
    assert session and session != before and "key-a" not in cookie  # a fresh id: the login form's is worth nothing
    home = page.get("/")
    assert home.status_code == 200 and "org-a" in home.text and "key-a" not in home.text


def test_each_organisation_sees_only_its_own_jobs(keyed, tmp_path, chat_rows, upload):
    browser, connect = keyed
    mine = queued_job(connect, tmp_path, chat_rows, upload, "key-a", "alpha")
    theirs = queued_job(connect, tmp_path, chat_rows, upload, "key-b", "beta")
    alice = browser()
    sign_in(alice, "key-a")
    jobs = alice.get("/").text
    assert mine.id in jobs and theirs.id not in jobs
    assert alice.get(f"/jobs/{mine.id}").status_code == 200
    for path in (f"/jobs/{theirs.id}", f"/jobs/{theirs.id}/curves.json"):
        assert alice.get(path).status_code == 404, path  # as the API: absent, not forbidden
    assert "No such fine-tuning job" in alice.get(f"/jobs/{theirs.id}/summary").text  # and the polls stop
    token = csrf_of(alice.get("/"))
    refused = alice.post(f"/jobs/{theirs.id}/cancel", headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert refused.status_code == 404
    assert connect("key-b").fine_tuning.jobs.retrieve(theirs.id).status != "cancelled"
    training = connect("key-b").fine_tuning.jobs.retrieve(theirs.id).training_file
    assert alice.get(f"/files/{training}/content").status_code == 404


def test_post_needs_the_sessions_csrf_token_from_this_site(dashboard, tmp_path, chat_rows, upload):
    with dashboard() as (browser, connect):
        job = queued_job(connect, tmp_path, chat_rows, upload, "local-key", "csrf")
        page = browser()
        token = csrf_of(page.get(f"/jobs/{job.id}"))
        pause = f"/jobs/{job.id}/pause"
        assert page.post(pause).status_code == 403  # no token
        assert page.post(pause, headers={"X-CSRF-Token": "forged"}).status_code == 403
        assert browser().post(pause, headers={"X-CSRF-Token": token}).status_code == 403  # another browser
        for site in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            assert page.post(pause, headers={"X-CSRF-Token": token, **site}).status_code == 403
        assert connect().fine_tuning.jobs.retrieve(job.id).status == "validating_files"  # none of them did a thing

        paused = page.post(pause, headers={"X-CSRF-Token": token, "HX-Request": "true",
                                           "Origin": "http://testserver"})
        assert paused.status_code == 200 and 'data-status="paused"' in paused.text
        assert connect().fine_tuning.jobs.retrieve(job.id).status == "paused"
        again = page.post(pause, data={"csrf_token": token})  # a plain form post: back to the page
        assert (again.status_code, again.headers["location"]) == (303, f"/jobs/{job.id}")
        cancelled = page.post(f"/jobs/{job.id}/cancel", headers={"X-CSRF-Token": token, "HX-Request": "true"})
        assert cancelled.status_code == 200 and connect().fine_tuning.jobs.retrieve(job.id).status == "cancelled"
        wrong = page.post(f"/jobs/{job.id}/resume", headers={"X-CSRF-Token": token, "HX-Request": "true"})
        assert "only a paused job can be resumed" in wrong.text  # the service's own refusal, shown


def test_login_and_logout_need_the_csrf_token_too(keyed):
    browser, _ = keyed
    page = browser()
    page.get("/login")
    assert page.post("/login", data={"api_key": "key-a"}).status_code == 403  # login CSRF
    assert browser().post("/login", data={"api_key": "key-a", "csrf_token": "x"}).status_code == 403
    sign_in(page, "key-a")
    assert page.post("/logout").status_code == 403
    out = page.post("/logout", data={"csrf_token": csrf_of(page.get("/"))})
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    assert page.get("/").status_code == 303


def test_local_mode_needs_no_sign_in(dashboard):
    with dashboard() as (browser, _):
        page = browser()
        home = page.get("/")
        assert home.status_code == 200 and "Sign out" not in home.text and "organisation: <b>local</b>" in home.text
        assert "httponly" in home.headers["set-cookie"].lower()  # a session anyway: it carries the CSRF token
        assert page.get("/login").headers["location"] == "/"


def test_failed_sign_ins_are_limited_per_address_and_a_good_key_still_needs_to_wait(keyed):
    from selftune.dashboard.throttle import MAX_FAILURES

    browser, _ = keyed
    page = browser()
    for _ in range(MAX_FAILURES):
        assert sign_in(page, "key-guess").status_code == 401
    refused = sign_in(page, "key-a")  # even the right key: the address must wait
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text
    assert page.get("/").status_code == 303
