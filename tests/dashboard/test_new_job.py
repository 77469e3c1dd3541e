"""The New job page in-process: a bad file's problems by line, field and code (stage 1's), a good file's
statistics, Start creating the job the API would (same rules, refusals named on the form, typed values
kept), CSRF, escaping, and the validation-file choices of the viewer's organisation only."""

from __future__ import annotations

import json
import re

from selftune.dashboard.new_job import field_of
from selftune.data import check
from selftune.train.methods import HYPERPARAMETERS, Method, method_spec
from tests.helpers import TWO_KEYS, XSS, csrf_of


def jsonl(rows: list) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def uploaded(page, name: str, content: bytes, model: str = "tiny") -> str:
    """Upload as the page's plain form does; the id of the file the redirect shows."""
    token = csrf_of(page.get("/new"))
    answer = page.post("/new/upload", data={"csrf_token": token, "model": model},
                       files={"file": (name, content, "application/jsonl")})
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("/new?file=file-") and location.endswith("&model=tiny")
    return location.split("file=")[1].split("&")[0]


def start(page, file_id: str, **fields: str):
    form = {"csrf_token": csrf_of(page.get("/new")), "file": file_id, "model": "tiny", "method": "supervised",
            **{f"hp_{name}": "auto" for name in method_spec(fields.get("method", "supervised")).hyperparameters},
            **fields}
    return page.post("/new", data=form)


def test_a_bad_file_shows_every_problem_by_line_field_and_code(dashboard, chat_rows, tmp_path):
    rows = [json.dumps(r) for r in chat_rows(12)]
    rows[2] = "{not json"
    rows[4] = json.dumps({"messages": [{"role": "wizard", "content": "hi"}]})
    with dashboard() as (browser, _):
        page = browser()
        file_id = uploaded(page, "bad.jsonl", ("\n".join(rows) + "\n").encode())
        shown = page.get(f"/new?file={file_id}&model=tiny")
        assert shown.status_code == 200
        text = shown.text
        assert 'class="report invalid" data-errors="2"' in text
        assert '<tr class="severity-error" data-line="3">' in text and '<tr class="severity-error" data-line="5">' in text
        assert "<code>invalid_json</code>" in text and "<code>messages[0].role</code>" in text
        assert 'id="start"' not in text  # no Start form for an invalid file
        # exactly what `selftune data check` finds in the same bytes
        path = tmp_path / "bad.jsonl"
        path.write_text("\n".join(rows) + "\n")
        for problem in check(path).errors:
            assert f'data-line="{problem.line}"' in text and f"<code>{problem.code}</code>" in text


def test_problems_are_capped_with_a_count_of_the_rest(dashboard):
    from selftune.dashboard.new_job import PROBLEMS_SHOWN

    with dashboard() as (browser, _):
        page = browser()
        file_id = uploaded(page, "many.jsonl", b"[]\n" * (PROBLEMS_SHOWN + 7))
        text = page.get(f"/new?file={file_id}").text
        assert text.count('<tr class="severity-error"') == PROBLEMS_SHOWN
        assert "… and 7 more errors" in text
        assert "<code>not_an_object</code>" in text


def test_a_good_file_shows_its_statistics_and_the_start_form(dashboard, chat_rows, tiny_model):
    from selftune.data.calibration import record_training_speed

    with dashboard() as (browser, _):
        record_training_speed(str(tiny_model), 1234.0, "test")  # as a past run on this machine left it
        page = browser()
        file_id = uploaded(page, "good.jsonl", jsonl(chat_rows(12)))
        text = page.get(f"/new?file={file_id}&model=tiny").text
        assert 'class="report valid"' in text and 'id="start"' in text
        assert f'hx-get="/new/stats?file={file_id}&amp;model=tiny"' in text
        for name in HYPERPARAMETERS:
            assert f'name="hp_{name}"' in text
        assert '<option value="supervised" selected>' in text
        stats = page.get(f"/new/stats?file={file_id}&model=tiny")
        assert stats.status_code == 200 and "<html" not in stats.text
        assert 'data-examples="12"' in stats.text and "Billed tokens" in stats.text
        assert "at 1,234 tokens/s" in stats.text  # the time estimate, from this machine's measured speed
        assert "not available" in page.get(f"/new/stats?file={file_id}&model=nope").text
        chosen = page.get(f"/new/stats?file={file_id}&model=tiny&epochs=2").text
        assert '<dt>Epochs</dt><dd class="epochs">2</dd>' in chosen
        assert "Epochs (auto rule)" in page.get(f"/new/stats?file={file_id}&model=tiny&epochs=0").text


def test_a_preference_file_is_checked_as_dpo_and_starts_a_dpo_job(dashboard, preference_rows):
    with dashboard() as (browser, connect):
        page = browser()
        file_id = uploaded(page, "pairs.jsonl", jsonl(preference_rows(12)))
        text = page.get(f"/new?file={file_id}&model=tiny").text
        assert 'class="report valid"' in text and "preference (input" in text
        assert f'<option value="{Method.DPO.value}" selected>' in text
        answer = start(page, file_id, method="dpo", hp_beta="0.2", hp_n_epochs="1")
        assert answer.status_code == 303, answer.text
        job = connect().fine_tuning.jobs.retrieve(answer.headers["location"].removeprefix("/jobs/"))
        assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.2
        assert job.method.dpo.hyperparameters.n_epochs == 1 and job.method.dpo.hyperparameters.batch_size == "auto"


def test_start_creates_the_job_with_the_chosen_settings(dashboard, chat_rows):
    with dashboard() as (browser, connect):
        page = browser()
        training = uploaded(page, "train.jsonl", jsonl(chat_rows(12)))
        validation = uploaded(page, "valid.jsonl", jsonl(chat_rows(10, seed=2)))
        connect().files.wait_for_processing(validation, poll_interval=0.05, max_wait_seconds=30)
        assert f'<option value="{validation}"' in page.get(f"/new?file={training}&model=tiny").text
        answer = start(page, training, hp_n_epochs="2", hp_batch_size="4", hp_learning_rate_multiplier="0.5",
                       suffix="my-run", seed="7", validation_file=validation, metadata="task=cards\nrun = 2\n")
        assert answer.status_code == 303, answer.text
        job_id = answer.headers["location"].removeprefix("/jobs/")
        job = connect().fine_tuning.jobs.retrieve(job_id)
        assert job.method.supervised.hyperparameters.n_epochs == 2
        assert job.method.supervised.hyperparameters.batch_size == 4
        assert job.method.supervised.hyperparameters.learning_rate_multiplier == 0.5
        assert (job.model, job.training_file, job.validation_file, job.seed) == ("tiny", training, validation, 7)
        assert job.user_provided_suffix == "my-run" and job.metadata == {"task": "cards", "run": "2"}


def test_start_with_a_validation_file_uploaded_on_the_form(dashboard, chat_rows):
    with dashboard() as (browser, connect):
        page = browser()
        training = uploaded(page, "train.jsonl", jsonl(chat_rows(12)))
        token = csrf_of(page.get("/new"))
        form = {"csrf_token": token, "file": training, "model": "tiny", "method": "supervised"}
        bad = page.post("/new", data=form, files={"validation_upload": ("v.jsonl", b"[]\n" * 12, "text/plain")})
        assert bad.status_code == 400
        assert 'class="report invalid"' in bad.text and "<code>not_an_object</code>" in bad.text
        assert "validation_file: the uploaded file" in bad.text
        good = page.post("/new", data=form, files={"validation_upload": ("v.jsonl", jsonl(chat_rows(10, 3)), "x")})
        assert good.status_code == 303, good.text
        job = connect().fine_tuning.jobs.retrieve(good.headers["location"].removeprefix("/jobs/"))
        assert connect().files.retrieve(job.validation_file).filename == "v.jsonl"


REFUSALS = [  # what the form sends, the field the API's error names, and its message
    ({"suffix": "bad suffix!"}, "suffix", "suffix must be at most 64 characters"),
    ({"hp_n_epochs": "0"}, "method.supervised.hyperparameters.n_epochs", "n_epochs must be 'auto' or in [1, 50], not 0"),
    ({"hp_n_epochs": "many"}, "method.supervised.hyperparameters.n_epochs", "n_epochs must be 'auto' or an integer"),
    ({"hp_beta": "0.1"}, "method.supervised.hyperparameters.beta", "beta is not a hyperparameter of the supervised"),
    ({"seed": "x"}, "seed", "seed: Input should be a valid integer"),
    ({"metadata": "no pair"}, "metadata", "each line is key=value"),
    ({"model": "nope"}, "model", "Model 'nope' is not available for fine-tuning"),
    ({"method": "dpo"}, "training_file", "the dpo method needs preference"),
]


def test_the_apis_refusals_are_shown_on_the_form_naming_the_field(dashboard, chat_rows):
    with dashboard() as (browser, connect):
        page = browser()
        training = uploaded(page, "train.jsonl", jsonl(chat_rows(12)))
        connect().files.wait_for_processing(training, poll_interval=0.05, max_wait_seconds=30)
        for fields, param, message in REFUSALS:
            answer = start(page, training, **({"suffix": "kept-suffix", "metadata": "a=b", "seed": "5"} | fields))
            assert answer.status_code == 400, fields
            assert f'data-param="{param}"' in answer.text, fields
            assert message.replace("'", "&#39;") in answer.text, fields
            field = field_of(param)
            if field != "training_file":  # marked at its field too
                assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', answer.text), fields
            # the form keeps what was typed, the refused value included
            assert f'value="{fields.get("suffix", "kept-suffix")}"' in answer.text
            assert f'value="{fields.get("seed", "5")}"' in answer.text
            assert f'>{fields.get("metadata", "a=b")}</textarea>' in answer.text
            for name, value in fields.items():
                if name.startswith("hp_"):
                    assert f'name="{name}" id="{name}" value="{value}"' in answer.text
        assert connect().fine_tuning.jobs.list().data == []


def test_posts_without_the_csrf_token_are_refused(dashboard, chat_rows):
    with dashboard() as (browser, connect):
        page = browser()
        page.get("/new")
        refused = page.post("/new/upload", files={"file": ("x.jsonl", jsonl(chat_rows(12)), "text/plain")})
        assert refused.status_code == 403
        training = uploaded(page, "train.jsonl", jsonl(chat_rows(12)))
        assert page.post("/new", data={"file": training, "model": "tiny"}).status_code == 403
        assert page.post("/new", data={"file": training, "model": "tiny", "csrf_token": "forged"}).status_code == 403
        assert connect().fine_tuning.jobs.list().data == []
        assert [f.filename for f in connect().files.list()] == ["train.jsonl"]


def test_the_scripts_upload_gets_json_and_an_empty_file_is_refused(dashboard, chat_rows):
    with dashboard() as (browser, _):
        page = browser()
        token = csrf_of(page.get("/new"))
        answer = page.post("/new/upload", headers={"X-CSRF-Token": token, "Accept": "application/json"},
                           files={"file": ("x.jsonl", jsonl(chat_rows(12)), "text/plain")})
        assert answer.status_code == 200 and answer.json()["location"] == f"/new?file={answer.json()['id']}"
        empty = page.post("/new/upload", headers={"X-CSRF-Token": token, "Accept": "application/json"},
                          files={"file": ("e.jsonl", b"", "text/plain")})
        assert empty.status_code == 400 and empty.json()["error"]["message"] == "The file is empty."
        plain = page.post("/new/upload", data={"csrf_token": token}, files={"file": ("e.jsonl", b"", "text/plain")})
        assert plain.status_code == 400 and "The file is empty." in plain.text


def test_a_file_named_like_markup_is_escaped(dashboard, chat_rows):
    with dashboard() as (browser, _):
        page = browser()
        file_id = uploaded(page, f"{XSS}.jsonl", jsonl(chat_rows(12)))
        text = page.get(f"/new?file={file_id}&model=tiny").text
        assert "&lt;img src=x onerror=alert(1)&gt;.jsonl" in text and "<img" not in text
        refused = start(page, file_id, suffix=XSS, metadata=f"{XSS}={XSS}")
        assert refused.status_code == 400 and "<img" not in refused.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in refused.text  # kept, as text


def test_only_the_viewers_files_are_offered_or_shown(dashboard, chat_rows):
    with dashboard(SELFTUNE_API_KEYS=TWO_KEYS) as (browser, connect):
        theirs = connect("key-b").files.create(file=("theirs.jsonl", jsonl(chat_rows(10))), purpose="fine-tune")
        mine = connect("key-a").files.create(file=("mine.jsonl", jsonl(chat_rows(10, 1))), purpose="fine-tune")
        for client, created in ((connect("key-b"), theirs), (connect("key-a"), mine)):
            client.files.wait_for_processing(created.id, poll_interval=0.05, max_wait_seconds=30)
        page = browser()
        page.post("/login", data={"api_key": "key-a", "csrf_token": csrf_of(page.get("/login"))})
        training = uploaded(page, "train.jsonl", jsonl(chat_rows(12)))
        text = page.get(f"/new?file={training}&model=tiny").text
        assert mine.id in text and theirs.id not in text and "theirs.jsonl" not in text
        other = page.get(f"/new?file={theirs.id}")
        assert other.status_code == 404 and "No such file" in other.text and "theirs.jsonl" not in other.text
        assert "No such file" in page.get(f"/new/stats?file={theirs.id}&model=tiny").text
        refused = start(page, training, validation_file=theirs.id)
        assert refused.status_code == 400 and 'data-param="validation_file"' in refused.text


def test_an_upload_over_the_apis_limit_is_refused_before_it_is_read(dashboard, chat_rows):
    with dashboard(SELFTUNE_MAX_UPLOAD_BYTES="1000") as (browser, connect):
        page = browser()
        token = csrf_of(page.get("/new"))
        big = jsonl(chat_rows(400))
        assert len(big) > 1000 + 64 * 1024
        answer = page.post("/new/upload", headers={"X-CSRF-Token": token, "Accept": "application/json"},
                           files={"file": ("big.jsonl", big, "text/plain")})
        assert answer.status_code == 413 and "larger than the limit of 1,000 bytes" in answer.json()["error"]["message"]
        unsigned = page.post("/new/upload", files={"file": ("big.jsonl", big, "text/plain")})
        assert unsigned.status_code == 413  # refused on its declared length, before the form (and token) is read
        small = page.post("/new/upload", headers={"X-CSRF-Token": token, "Accept": "application/json"},
                          files={"file": ("small.jsonl", jsonl(chat_rows(20)), "text/plain")})
        assert small.status_code == 413  # past the service's own limit, under the multipart allowance
        assert connect().files.list().data == []
