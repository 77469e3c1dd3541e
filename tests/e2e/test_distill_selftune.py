"""selftune as the teacher: ``selftune distill`` against a live selftune server, from fresh answers
and from completions stored with ``store: true``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from selftune.data.check import check


def selftune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selftune.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OPENAI_API_KEY": "local"})


def test_distill_from_a_selftune_teacher(shared_server, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"My card number {i} has not arrived" for i in range(12)) + "\n")
    out = tmp_path / "train.jsonl"
    result = selftune("distill", "--prompts", str(prompts), "--out", str(out), "--teacher-base-url", shared_server.url,
                      "--teacher-model", "tiny", "--max-tokens", "6", "--keep-truncated", "--concurrency", "4",
                      "--temperature", "1")  # the random test model's greedy answers are blank
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["kept"] == len(rows) >= 10 and summary["kept"] + sum(summary["dropped"].values()) == 12
    assert summary["requests_this_run"] == 12 and summary["teacher_tokens_this_run"]["completion"] > 0
    assert check(out).valid
    assert all(r["messages"][-1]["role"] == "assistant" and r["messages"][-1]["content"] for r in rows)


def test_distill_from_stored_completions_filtered_by_metadata(shared_server, tmp_path):
    client = shared_server.client()
    asked = []
    for i in range(14):
        question = [{"role": "user", "content": f"Where is card {i}?"}]
        answer = client.chat.completions.create(model="tiny", messages=question, max_tokens=5, temperature=1,
                                                seed=i, store=True, metadata={"task": "cards"})
        asked.append((question[0]["content"], answer.choices[0].message.content))
    client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Fees?"}], max_tokens=5,
                                   store=True, metadata={"task": "fees"})
    out = tmp_path / "stored.jsonl"
    result = selftune("distill", "--from-stored", "--metadata", "task=cards", "--base-url", shared_server.url,
                      "--out", str(out), "--keep-truncated")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    got = [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows]
    assert got == [(q, a.strip()) for q, a in asked if a.strip()]  # oldest first; an empty answer is dropped
    assert len(got) >= 10 and check(out).valid


def test_distill_through_the_batch_api_caches_every_answer(shared_server, tmp_path):
    """``--batch``: one batch of the teacher's Batch API; its answers are cached, so the same run again
    sends nothing."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"My batched card {i} has not arrived" for i in range(12)) + "\n")
    out = tmp_path / "train.jsonl"
    args = ("distill", "--prompts", str(prompts), "--out", str(out), "--teacher-base-url", shared_server.url,
            "--teacher-model", "tiny", "--max-tokens", "6", "--keep-truncated", "--temperature", "1", "--batch")
    first = selftune(*args)
    assert first.returncode == 0, first.stderr
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["requests_this_run"] == 12 and summary["failed_requests_this_run"] == 0
    assert summary["kept"] >= 10 and check(out).valid
    cached = [json.loads(line) for line in out.with_suffix(".cache.jsonl").read_text().splitlines()]
    assert len(cached) == 12 and all(c["completion_tokens"] > 0 for c in cached)
    [batch] = [b for b in shared_server.client().batches.list(limit=100) if b.metadata == {"selftune": "distill"}]
    assert batch.status == "completed" and batch.request_counts.total == 12

    again = selftune(*args)
    assert again.returncode == 0, again.stderr
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["requests_this_run"] == 0 and summary["answers_reused_from_cache"] == 12
    assert len([b for b in shared_server.client().batches.list(limit=100)
                if b.metadata == {"selftune": "distill"}]) == 1  # nothing sent the second time
