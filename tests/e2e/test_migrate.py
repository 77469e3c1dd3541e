"""Leaving the hosted service, played with a second selftune server as the "hosted" side: its own key and
organisation, fine-tuned models named after a hosted base, stored production traffic, and one training
file deleted there. The `selftune migrate` commands run as a user runs them (the CLI, as subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HOSTED_BASE = "gpt-4.1-nano-2025-04-14"
ALIASES = f"{HOSTED_BASE}=tiny"
SYSTEM = "Classify the banking question."


def selftune(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "selftune.cli", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "400", **(env or {})}, timeout=600)
    return result


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def hosted(new_server):
    server = new_server(SELFTUNE_API_KEYS="hosted-key:acme", SELFTUNE_MODEL_ALIASES=ALIASES).start()
    yield server
    server.stop()


@pytest.fixture
def local(new_server):
    server = new_server(SELFTUNE_MODEL_ALIASES=ALIASES).start()
    yield server
    server.stop()


@pytest.mark.slow  # about a minute: four trainings on two servers and seven CLI runs (the rules are unit-tested)
def test_inventory_capture_replay_compare(hosted, local, tmp_path, chat_rows, write_jsonl, upload, wait_for):
    # ---- the team's past on the "hosted" service ------------------------------------------------------------
    old = hosted.client("hosted-key")
    data = tmp_path / "data"
    data.mkdir()
    intents = write_jsonl(data / "intents.jsonl", chat_rows(10))
    faq = write_jsonl(data / "faq.jsonl", chat_rows(10, seed=1))
    intents_file, faq_file = upload(old, intents), upload(old, faq)
    job1 = old.fine_tuning.jobs.create(model=HOSTED_BASE, training_file=intents_file.id, suffix="intents", seed=7,
                                       metadata={"team": "cards"},
                                       method={"type": "supervised", "supervised": {"hyperparameters": {
                                           "n_epochs": 2, "batch_size": 4}}})
    job2 = old.fine_tuning.jobs.create(model=HOSTED_BASE, training_file=faq_file.id, suffix="faq",
                                       hyperparameters={"n_epochs": 1})
    job1, job2 = wait_for(old, job1.id), wait_for(old, job2.id)
    assert (job1.status, job2.status) == ("succeeded", "succeeded")
    assert job2.fine_tuned_model.startswith(f"ft:{HOSTED_BASE}:acme:faq:")
    # its production traffic, kept with store: true
    prompts = [row["messages"][:2] for row in chat_rows(20, seed=2)]
    for messages in prompts[:14]:
        old.chat.completions.create(model=job2.fine_tuned_model, messages=messages, max_tokens=6, store=True,
                                    metadata={"source": "prod"})
    old.chat.completions.create(model=job2.fine_tuned_model, messages=prompts[14], max_tokens=6, store=True)
    old.files.delete(faq_file.id)  # the faq data is gone from the service: only its behaviour is left

    # ---- 1. inventory -----------------------------------------------------------------------------------------
    plan_path = tmp_path / "plan.json"
    printed = _ok(selftune("migrate", "inventory", "--base-url", hosted.url, "--api-key", "hosted-key",
                           "--data", data, "--out", plan_path))
    assert job1.id in printed and job2.id in printed and "local copy" in printed and "deleted" in printed
    plan = json.loads(plan_path.read_text())
    by_id = {j["id"]: j for j in plan["jobs"]}
    one, two = by_id[job1.id], by_id[job2.id]
    assert (one["model"], one["method"], one["suffix"], one["seed"], one["metadata"]) == (
        HOSTED_BASE, "supervised", "intents", 7, {"team": "cards"})
    assert one["hyperparameters"]["n_epochs"] == 2 and one["hyperparameters"]["batch_size"] == 4
    assert one["fine_tuned_model"] == job1.fine_tuned_model and one["replay"] is True
    assert one["checkpoints"] and one["checkpoints"][-1]["model"].endswith(f":ckpt-step-{one['checkpoints'][-1]['step']}")
    assert "train_loss" in one["final_metrics"]
    assert plan["files"][intents_file.id] | {"local_copy": None} == {
        "id": intents_file.id, "filename": "intents.jsonl", "bytes": intents.stat().st_size, "purpose": "fine-tune",
        "on_service": True, "downloadable": True, "local_copy": None}
    assert Path(plan["files"][intents_file.id]["local_copy"]) == intents.resolve()
    assert plan["files"][faq_file.id]["on_service"] is False
    assert two["stored_completions"]["count"] == 15 and two["stored_completions"]["metadata_keys"] == ["source"]
    assert one["stored_completions"]["count"] == 0

    # ---- 2. capture: from the stored traffic, then from prompts (resumable, never paid twice) ----------------
    captured = tmp_path / "captured.jsonl"
    printed = _ok(selftune("migrate", "capture", "--base-url", hosted.url, "--api-key", "hosted-key",
                           "--model", job2.fine_tuned_model, "--from-stored", "--metadata", "source=prod",
                           "--keep-truncated", "--out", captured, "--plan", plan_path))
    assert "recorded in" in printed
    rows = [json.loads(line) for line in captured.read_text().splitlines()]
    # the 14 prod completions (answers cut at 6 tokens kept: the tiny model never ends a turn), less empty ones
    assert 10 <= len(rows) <= 14
    assert all(r["messages"][:2] in prompts[:14] and r["messages"][-1]["role"] == "assistant" for r in rows)
    captured_for = {j["id"]: j["captured_file"] for j in json.loads(plan_path.read_text())["jobs"]}
    assert captured_for == {job1.id: None, job2.id: str(captured.resolve())}
    assert _ok(selftune("data", "check", captured)).startswith("✓")

    prompt_file = write_jsonl(tmp_path / "prompts.jsonl", [{"messages": m} for m in prompts[12:18]])
    asked = tmp_path / "asked.jsonl"

    def capture_prompts() -> dict:
        # both sources: the stored traffic and the model's answers to prompts (some of them already stored)
        _ok(selftune("migrate", "capture", "--base-url", hosted.url, "--api-key", "hosted-key", "--model",
                     job2.fine_tuned_model, "--from-stored", "--metadata", "source=prod", "--prompts", prompt_file,
                     "--max-tokens", "6", "--keep-truncated", "--out", asked))
        return json.loads(asked.with_suffix(".summary.json").read_text())

    first = capture_prompts()
    assert first["requests_this_run"] == 6 and first["answers_reused_from_cache"] == 0
    assert first["prompts"] == 14 + 6 and first["kept"] >= len(rows)
    cache = asked.with_suffix(".prompts.cache.jsonl")
    cache.write_text("".join(cache.read_text().splitlines(keepends=True)[:2]))  # killed after 2 answers
    again = capture_prompts()
    assert again["requests_this_run"] == 4 and again["answers_reused_from_cache"] == 2

    # ---- 3. replay on the local server (the hosted base name is mapped by SELFTUNE_MODEL_ALIASES) ---------------
    printed = _ok(selftune("migrate", "replay", plan_path, "--base-url", local.url))
    plan = json.loads(plan_path.read_text())
    replayed = {j["id"]: j["replayed"] for j in plan["jobs"]}
    assert {r["status"] for r in replayed.values()} == {"succeeded"}, printed
    assert replayed[job1.id]["training_file"] == str(intents.resolve())
    assert replayed[job2.id]["training_file"] == str(captured.resolve())
    new = local.client()
    new_job1 = new.fine_tuning.jobs.retrieve(replayed[job1.id]["job_id"])
    assert (new_job1.model, new_job1.user_provided_suffix, new_job1.seed) == (HOSTED_BASE, "intents", 7)
    assert new_job1.metadata == {"team": "cards", "migrated_from": job1.id}
    assert new_job1.method.supervised.hyperparameters.n_epochs == 2
    assert new_job1.fine_tuned_model.startswith(f"ft:{HOSTED_BASE}:local:intents:")
    jobs_before = len(new.fine_tuning.jobs.list(limit=100).data)
    assert "already replayed" in _ok(selftune("migrate", "replay", plan_path, "--base-url", local.url))
    assert len(new.fine_tuning.jobs.list(limit=100).data) == jobs_before  # nothing created twice

    # ---- 4. compare the old model with its replacement ---------------------------------------------------------
    held_out = write_jsonl(tmp_path / "held_out.jsonl", chat_rows(6, seed=3))
    report_dir = tmp_path / "compare"
    printed = _ok(selftune("migrate", "compare", "--old", f"{job2.fine_tuned_model}@{hosted.url}",
                           "--old-api-key", "hosted-key", "--new", replayed[job2.id]["fine_tuned_model"],
                           "--base-url", local.url, "--data", held_out, "--max-tokens", "6", "--out", report_dir))
    report = json.loads((report_dir / "report.json").read_text())
    (agreement,) = report["agreements"]
    assert agreement["with_model"] == job2.fine_tuned_model and 0 <= agreement["share"] <= 1
    old_result, new_result = report["models"]
    assert old_result["cost_basis"] == "gpt-4.1-nano fine-tune list price"
    assert new_result["cost_basis"] == "local" and new_result["endpoint"] == local.url
    assert "gives the same answer as" in printed and (report_dir / "report.html").is_file()


HOSTED_STYLE_SCRIPT = textwrap.dedent('''
    """A fine-tuning script as written for the hosted service: the endpoint and key come from the
    environment, the base model is a hosted name."""
    import time

    from openai import OpenAI

    client = OpenAI()
    training = client.files.create(file=open("train.jsonl", "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        training_file=training.id, model="gpt-4.1-nano-2025-04-14", seed=42, suffix="course",
        hyperparameters={"n_epochs": 2, "batch_size": 4})
    print("created", job.id, job.model)
    while True:
        job = client.fine_tuning.jobs.retrieve(job.id)
        if job.status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(1)
    latest = client.fine_tuning.jobs.list(limit=1).data[0]
    assert latest.id == job.id, (latest.id, job.id)
    events = client.fine_tuning.jobs.list_events(fine_tuning_job_id=job.id, limit=10)
    print("events", len(events.data))
    print("status", job.status, job.fine_tuned_model)
    answer = client.chat.completions.create(model=job.fine_tuned_model, max_tokens=5,
                                            messages=[{"role": "user", "content": "question 0-1: about lost_card please"}])
    print("answer", repr(answer.choices[0].message.content))
''')


@pytest.mark.slow  # ~14 s: a server, a job and a script process; aliases are unit-tested in tests/models/test_catalog.py
def test_a_hosted_style_script_runs_unchanged_with_a_mapped_model_name(local, tmp_path, chat_rows, write_jsonl):
    write_jsonl(tmp_path / "train.jsonl", chat_rows(10))
    (tmp_path / "script.py").write_text(HOSTED_STYLE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    result = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**env, "OPENAI_BASE_URL": local.url, "OPENAI_API_KEY": "sk-anything"})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["created"].endswith(HOSTED_BASE)
    assert lines["status"].startswith(f"succeeded ft:{HOSTED_BASE}:local:course:")
    assert int(lines["events"]) > 0 and "answer" in lines
    model = local.client().models.retrieve(HOSTED_BASE)
    assert model.id == HOSTED_BASE
