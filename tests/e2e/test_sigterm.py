"""SIGTERM to ``selftune serve`` (``kill``, systemd, docker stop) while it streams an answer and trains a
job: the stream ends with an error event and ``[DONE]`` (not a cut connection), the job stops at a
checkpoint and is queued again, and the process exits 0 within a bounded time."""

from __future__ import annotations

import json
import shutil
import signal
import time

import openai
import pytest

# ~16 s of a real server streaming and training: in the slow suite (CI runs it) so the default suite stays
# within five minutes; Ctrl-C's stop-at-a-checkpoint is in the default suite (test_crash_and_restart.py)
pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Tell me a very long story."}]


def test_sigterm_ends_streams_with_an_error_stops_jobs_at_a_checkpoint_and_exits(
        tmp_path, new_server, tiny_model, service_env, chat_rows, upload, wait_until_step, all_events):
    long = tmp_path / "long-model"  # the tiny model with a long context: an answer of thousands of tokens
    shutil.copytree(tiny_model, long)
    config = json.loads((long / "config.json").read_text())
    (long / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 16384}))
    server = new_server(SELFTUNE_BASE_MODELS=f"{service_env['SELFTUNE_BASE_MODELS']},long={long}")
    client = server.start().client()
    training = upload(client, tmp_path / "train.jsonl", chat_rows(100))
    # 2,000 steps: still training when the signal comes, even on a fast machine (200 were done before it once)
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id,
                                         hyperparameters={"n_epochs": 20, "batch_size": 1})
    wait_until_step(client, job.id, 5)

    stream = client.chat.completions.create(model="long", messages=HELLO, max_tokens=16000, temperature=1.0,
                                            stream=True)
    chunks = iter(stream)
    received = [next(chunks) for _ in range(3)]  # the answer is under way
    server.process.send_signal(signal.SIGTERM)
    sent = time.time()
    try:
        for chunk in chunks:
            received.append(chunk)
            assert chunk.choices[0].finish_reason is None, "the answer ended before the signal arrived"
        raise AssertionError("the stream ended without an error")
    except openai.APIError as exc:
        assert not isinstance(exc, openai.APIConnectionError)  # an error event, not a cut connection
        assert exc.body["code"] == "server_shutting_down", exc.message
    assert time.time() - sent < 5  # the stream did not run on to the end of its 16,000 tokens
    server.process.wait(timeout=60)
    assert server.process.returncode == 0, server.log()
    assert time.time() - sent < 30, "the server took too long to stop"

    server.args = ["--no-worker"]  # look, without resuming it: the job was queued again at a checkpoint
    client = server.start().client()
    job = client.fine_tuning.jobs.retrieve(job.id)
    messages = [e.message for e in all_events(client, job.id)]
    server.stop()
    assert job.status == "queued", job.status
    steps = [int(m.rsplit(" ", 1)[1]) for m in messages if m.startswith("Checkpoint created at step")]
    assert steps and max(steps) >= 5, messages  # saved when it stopped: a restart resumes from there
