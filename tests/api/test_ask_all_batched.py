"""``ask_all_batched`` (what ``selftune eval --batch`` and ``selftune distill --batch`` send through)
against the app in process: the same answers as one by one, refusals and cancelled requests as Replies
with their error, and Ctrl-C keeping the answers already paid for."""

from __future__ import annotations

import pytest

from selftune.evals.batched import ERROR, ask_all_batched
from selftune.evals.requests import ChatRequest, ask_all

GREEDY = {"max_tokens": 6, "temperature": 0}


def _requests(n: int) -> list[ChatRequest]:
    return [ChatRequest([{"role": "user", "content": f"Where is my card number {i}?"}]) for i in range(n)]


def test_a_batch_answers_as_one_by_one_in_order(client):
    requests = [*_requests(4), ChatRequest([{"role": "user", "content": "Seeded"}], seed=3)]
    advanced, seen = [], []
    batched = ask_all_batched(client, "tiny", requests, GREEDY, metadata={"selftune": "test"},
                              progress=advanced.append, on_reply=lambda i, reply: seen.append(i), poll_seconds=0.2)
    direct = ask_all(client, "tiny", requests, GREEDY, concurrency=2)
    assert [r.text for r in batched] == [r.text for r in direct]
    assert [(r.prompt_tokens, r.completion_tokens, r.finish_reason) for r in batched] == [
        (r.prompt_tokens, r.completion_tokens, r.finish_reason) for r in direct]
    assert not any(r.failed for r in batched) and all(r.latency_s is None for r in batched)
    assert seen == list(range(5)) and sum(advanced) == 5
    (batch,) = client.batches.list()
    assert batch.metadata == {"selftune": "test"} and batch.request_counts.completed == 5


def test_a_refused_request_comes_back_as_a_reply_with_its_error(client):
    replies = ask_all_batched(client, "nope", _requests(2), GREEDY, poll_seconds=0.2)
    assert all(r.failed and r.text == "" and r.prompt_tokens == 0 for r in replies)
    assert replies[0].error.startswith(f"{ERROR}status 404 model_not_found: ") and "nope" in replies[0].error


def test_ctrl_c_cancels_the_batch_and_keeps_what_came_back(serve_in_process):
    with serve_in_process(SELFTUNE_BATCH_CONCURRENCY="1") as connect:  # one at a time: the cancel lands mid-batch
        _ctrl_c_cancels(connect())


def _ctrl_c_cancels(client) -> None:
    requests = [ChatRequest([{"role": "user", "content": f"Tell me about card {i}"}]) for i in range(200)]
    seen, pressed = {}, []

    def progress(n: int) -> None:
        if not pressed:  # Ctrl-C once the first answers are in
            pressed.append(n)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ask_all_batched(client, "tiny", requests, {"max_tokens": 32, "temperature": 0}, progress=progress,
                        on_reply=seen.__setitem__, poll_seconds=0.2)
    (batch,) = client.batches.list()
    assert batch.status == "cancelled"
    assert sorted(seen) == list(range(200))  # every request handed over, answered or not
    answered = [r for r in seen.values() if not r.failed]
    assert len(answered) == batch.request_counts.completed >= pressed[0] > 0
    cancelled = [r for r in seen.values() if r.failed]
    assert len(cancelled) == batch.request_counts.failed
    assert all(r.error.startswith(f"{ERROR}batch_cancelled: ") for r in cancelled)
