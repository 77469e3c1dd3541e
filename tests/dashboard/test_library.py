"""The files page, a file's page (problems, token statistics on demand) and the models page, in-process:
what they list and page, delete with the API's rules and only with the CSRF token, escaping of names
written like markup, and organisations kept apart."""

from __future__ import annotations

import re

import pytest

from tests.helpers import TWO_KEYS, XSS, csrf_of, sign_in


def uploaded(client, name: str, body: bytes):
    created = client.files.create(file=(name, body), purpose="fine-tune")
    return client.files.wait_for_processing(created.id, poll_interval=0.1, max_wait_seconds=60)


def fake_trained(app, job_id: str, steps=(2, 4)) -> str:
    """Mark a queued job succeeded with a model and checkpoints, as the worker records them (no training:
    these pages only list them; the playground's tests chat with real models)."""
    from sqlalchemy import select

    from selftune.jobs.relay import planned_id
    from selftune.store.tables import CheckpointRow, JobRow, ModelRow, new_id

    with app.state.jobs.db.transaction() as session:
        job = session.scalar(select(JobRow).where(JobRow.id == job_id))
        model = str(planned_id(job))
        for step in steps:
            session.add(CheckpointRow(id=new_id("ftckpt-"), job_id=job.id, org=job.org, step_number=step,
                                      metrics={"train_loss": 1.0 / step}, model=str(planned_id(job).at_step(step)),
                                      path="/nonexistent"))
        session.add(ModelRow(id=model, org=job.org, job_id=job.id, base_model=job.model, path="/nonexistent"))
        job.status, job.fine_tuned_model = "succeeded", model
    return model


def test_files_are_listed_newest_first_paged_escaped_with_their_problems(dashboard, tmp_path, chat_rows, write_jsonl):
    with dashboard() as (browser, connect):
        client = connect()
        good = uploaded(client, f"{XSS}.jsonl", write_jsonl(tmp_path / "g.jsonl", chat_rows(12)).read_bytes())
        bad = uploaded(client, "bad.jsonl", b'{"messages": []}\nnot json\n')
        assert bad.status == "error"
        page = browser()
        listed = page.get("/files")
        assert listed.status_code == 200
        assert re.findall(r'<tr data-file="([^"]+)">', listed.text) == [bad.id, good.id]
        assert "<img" not in listed.text and "&lt;img src=x onerror=alert(1)&gt;.jsonl" in listed.text
        assert "Invalid file format." in listed.text and "Line 2" in listed.text  # the service's problems
        assert f'href="/files/{good.id}/content"' in listed.text
        assert "12 examples" not in listed.text  # no token counting on the list
        first = page.get("/files?limit=1")
        assert re.findall(r'<tr data-file="([^"]+)">', first.text) == [bad.id]
        assert f'href="/files?limit=1&amp;after={bad.id}"' in first.text
        second = page.get(f"/files?limit=1&after={bad.id}")
        assert re.findall(r'<tr data-file="([^"]+)">', second.text) == [good.id] and "« First page" in second.text
        assert "No such file" in page.get("/files?after=file-nope").text
        assert page.get("/files?limit=0").status_code in (400, 422)
        download = page.get(f"/files/{good.id}/content")
        assert download.status_code == 200 and download.content.startswith(b'{"messages"')


def test_a_files_page_counts_tokens_only_when_asked(dashboard, tmp_path, chat_rows, write_jsonl):
    with dashboard() as (browser, connect):
        client = connect()
        good = uploaded(client, f"{XSS}.jsonl", write_jsonl(tmp_path / "g.jsonl", chat_rows(12)).read_bytes())
        bad = uploaded(client, "bad.jsonl", b"not json\n")
        page = browser()
        plain = page.get(f"/files/{good.id}")
        assert plain.status_code == 200 and "<img" not in plain.text and "Count tokens" in plain.text
        assert 'class="total-tokens"' not in plain.text
        counted = page.get(f"/files/{good.id}", params={"model": "tiny"})
        assert 'class="total-tokens"' in counted.text
        assert re.search(r"<dt>Examples</dt><dd>12</dd>", counted.text)
        assert "Not valid" not in counted.text and 'role="alert"' not in counted.text
        unknown = page.get(f"/files/{good.id}", params={"model": XSS})
        assert "model: " in unknown.text and "is not a base model" in unknown.text and "<img" not in unknown.text
        refused = page.get(f"/files/{bad.id}", params={"model": "tiny"})
        assert "valid fine-tune files only" in refused.text and "Invalid file format." in refused.text
        missing = page.get("/files/file-nope")
        assert missing.status_code == 404 and "No such file" in missing.text


def test_deleting_a_file_needs_the_token_and_follows_the_api(dashboard, tmp_path, chat_rows, write_jsonl):
    import openai

    with dashboard() as (browser, connect):
        client = connect()
        file = uploaded(client, "f.jsonl", write_jsonl(tmp_path / "g.jsonl", chat_rows(12)).read_bytes())
        page = browser()
        token = csrf_of(page.get("/files"))
        assert page.post(f"/files/{file.id}/delete").status_code == 403
        assert page.post(f"/files/{file.id}/delete", data={"csrf_token": "wrong"}).status_code == 403
        assert client.files.retrieve(file.id).id == file.id  # still there
        gone = page.post(f"/files/{file.id}/delete", data={"csrf_token": token})
        assert (gone.status_code, gone.headers["location"]) == (303, f"/files?deleted={file.id}")
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(file.id)
        assert f"Deleted <code>{file.id}</code>" in page.get(gone.headers["location"]).text
        again = page.post(f"/files/{file.id}/delete", data={"csrf_token": token})
        assert again.status_code == 404 and "No such file" in again.text


def test_the_models_page_lists_base_and_fine_tuned_models_with_checkpoints_and_deletes(dashboard, tmp_path, chat_rows,
                                                                                       write_jsonl):
    import openai

    with dashboard() as (browser, connect):
        client = connect()
        training = uploaded(client, f"{XSS}.jsonl", write_jsonl(tmp_path / "g.jsonl", chat_rows(12)).read_bytes())
        job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id, suffix="cards")
        page = browser()
        empty = page.get("/models")
        assert "No fine-tuned models yet" in empty.text and '<code class="model">tiny</code>' in empty.text
        assert 'href="/playground?model=tiny"' in empty.text
        model = fake_trained(page.app, job.id)
        shown = page.get("/models")
        assert "<img" not in shown.text and "&lt;img src=x onerror=alert(1)&gt;.jsonl" in shown.text  # trained on
        assert model in shown.text and f'href="/jobs/{job.id}"' in shown.text
        assert f'href="/playground?model={model.replace(":", "%3A")}&amp;model=tiny"' in shown.text
        assert f"{model}:ckpt-step-2" in shown.text and f"{model}:ckpt-step-4" in shown.text
        assert "2 checkpoints" in shown.text
        job_page = page.get(f"/jobs/{job.id}").text  # the job page links its model and checkpoints there too
        for linked in (model, f"{model}:ckpt-step-2"):
            assert f'href="/playground?model={linked.replace(":", "%3A")}&amp;model=tiny"' in job_page
        token = csrf_of(page.get("/files"))

        def delete(model_id: str, **extra):
            return page.post("/models/delete", data={"model": model_id, **extra})

        assert delete(model).status_code == 403  # no token
        refused = delete("tiny", csrf_token=token)
        assert refused.status_code == 403 and "can&#39;t be deleted" in refused.text
        refused = delete(f"{model}:ckpt-step-2", csrf_token=token)
        assert refused.status_code == 400 and "deleted with its job" in refused.text
        assert delete("", csrf_token=token).status_code == 400
        assert client.models.retrieve(model).id == model
        deleted = delete(model, csrf_token=token)
        assert deleted.status_code == 303
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve(model)
        after = page.get(deleted.headers["location"])
        assert "and its checkpoints" in after.text and "No fine-tuned models yet" in after.text
        assert delete(model, csrf_token=token).status_code == 404


def test_another_organisation_sees_none_of_the_files_or_models(dashboard, tmp_path, chat_rows, write_jsonl):
    with dashboard(SELFTUNE_API_KEYS=TWO_KEYS) as (browser, connect):
        client = connect("key-a")
        file = uploaded(client, "secret-a.jsonl", write_jsonl(tmp_path / "g.jsonl", chat_rows(12)).read_bytes())
        job = client.fine_tuning.jobs.create(model="tiny", training_file=file.id)
        a, b = browser(), browser()
        for path in ("/files", "/models", f"/files/{file.id}"):
            assert a.get(path).status_code == 303  # signed out: to the login form
        assert sign_in(a, "key-a").status_code == sign_in(b, "key-b").status_code == 303
        model = fake_trained(a.app, job.id)
        assert "secret-a.jsonl" in a.get("/files").text and model in a.get("/models").text
        assert file.id not in b.get("/files").text and "secret-a" not in b.get("/files").text
        assert model not in b.get("/models").text and job.id not in b.get("/models").text
        assert b.get(f"/files/{file.id}").status_code == 404
        assert b.get(f"/files/{file.id}/content").status_code == 404
        token = csrf_of(b.get("/files"))
        assert b.post(f"/files/{file.id}/delete", data={"csrf_token": token}).status_code == 404
        assert b.post("/models/delete", data={"model": model, "csrf_token": token}).status_code == 404
        assert model not in b.get("/playground").text
        assert model in a.get("/playground").text
        assert client.files.retrieve(file.id).id == file.id and client.models.retrieve(model).id == model
