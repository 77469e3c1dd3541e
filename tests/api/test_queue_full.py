"""Backpressure: when SELFTUNE_SERVE_MAX_QUEUED sequences already wait for the engine, a new chat
(or Responses) request is refused at once with a 429 in the hosted rate-limit shape and a ``Retry-After`` header (a
stream too, before its first byte), the openai SDK waits and retries, and once the queue drains
requests are answered again. Normal traffic gives every place back."""

from __future__ import annotations

import threading
import time

import openai
import pytest
from fastapi.testclient import TestClient

from selftune.serve.embedded import EmbeddedEngine
from selftune.serve.engine import Admission, QueueFull

HELLO = [{"role": "user", "content": "Where is my new card?"}]
LIMIT = 2
REQUEST_THREAD = "request-to-a-held-engine"


@pytest.fixture
def http(monkeypatch, service_env):
    """The app with room for LIMIT waiting sequences (no worker: only chat is under test)."""
    from selftune.api.app import create_app
    from selftune.config import get_settings

    for name, value in {**service_env, "SELFTUNE_SERVE_MAX_QUEUED": str(LIMIT)}.items():
        monkeypatch.setenv(name, value)
    with TestClient(create_app(get_settings(), embedded_worker=False)) as client:
        yield client


def sdk(http: TestClient, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key="local-key", http_client=http,
                         max_retries=max_retries)


def admission(http: TestClient) -> Admission:
    return http.app.state.chat.admission


@pytest.fixture
def hold(http, monkeypatch):
    """``hold()``: from then on the engine's scheduler stops before it hands out a step's tokens until the
    returned event is set: what a CPU busy with a long batch does to the requests behind it, without a
    clock. Released at the end of the test whatever happened, before the app stops."""
    go = threading.Event()

    def start() -> threading.Event:
        advance = EmbeddedEngine._advance

        def held(self, sequence, logits):
            go.wait()
            advance(self, sequence, logits)

        monkeypatch.setattr(EmbeddedEngine, "_advance", held)
        return go

    yield start
    go.set()
    for thread in threading.enumerate():  # the requests sent while it was held end before the app stops
        if thread.name == REQUEST_THREAD:
            thread.join(timeout=60)


def in_thread(call) -> tuple[threading.Thread, list]:
    """Run ``call`` in a thread (it blocks while the engine is held); its result lands in the list."""
    results: list = []
    thread = threading.Thread(target=lambda: results.append(call()), name=REQUEST_THREAD, daemon=True)
    thread.start()
    return thread, results


def wait_until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def fill(http: TestClient, hold) -> tuple[threading.Event, list]:
    """The model loaded, then the engine held with LIMIT sequences waiting: one whole answer, one stream."""
    client = sdk(http)
    assert client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=2).choices  # loads the model
    go = hold()
    whole = in_thread(lambda: client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=3))
    streamed = in_thread(lambda: "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=3, stream=True) if c.choices))
    wait_until(lambda: admission(http).waiting == LIMIT, f"{LIMIT} sequences waiting")
    return go, [whole, streamed]


def drain(go: threading.Event, waiting: list) -> list:
    go.set()
    for thread, _ in waiting:
        thread.join(timeout=60)
    return [results[0] for _, results in waiting]


def test_a_full_queue_answers_429_with_retry_after_then_serves_again(http, hold):
    go, waiting = fill(http, hold)
    client = sdk(http)

    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=3)
    assert refused.value.status_code == 429
    assert refused.value.body["type"] == "requests" and refused.value.body["code"] == "rate_limit_exceeded"
    assert refused.value.body["message"] == (f"The server is busy: {LIMIT} requests are waiting for the model (its limit, "
                                     f"SELFTUNE_SERVE_MAX_QUEUED, is {LIMIT}). Please try again in "
                                     f"{refused.value.response.headers['retry-after']}s.")
    assert int(refused.value.response.headers["retry-after"]) >= 1

    with pytest.raises(openai.RateLimitError):  # a stream is refused before it starts, not with an error event
        client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=3, stream=True)
    for stream in (False, True):  # the Responses API answers on the same engine: it waits in the same room
        with pytest.raises(openai.RateLimitError):
            client.responses.create(model="tiny", input="Where is my new card?", max_output_tokens=16, stream=stream)

    for stream in (False, True):  # the raw answer: the hosted error shape, JSON even when a stream was asked for
        raw = http.post("/v1/chat/completions", headers={"Authorization": "Bearer local-key"},
                        json={"model": "tiny", "messages": HELLO, "max_tokens": 3, "stream": stream})
        assert raw.status_code == 429 and raw.headers["content-type"] == "application/json"
        assert raw.headers["retry-after"].isdigit() and int(raw.headers["retry-after"]) >= 1
        assert set(raw.json()["error"]) == {"message", "type", "param", "code"}
        assert raw.json()["error"]["param"] is None
    assert admission(http).waiting == LIMIT  # refusals took no place

    whole, streamed = drain(go, waiting)
    assert whole.choices[0].message.content and streamed
    assert admission(http).waiting == 0
    assert client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=3).choices[0].message.content
    assert client.responses.create(model="tiny", input="Where is my new card?", max_output_tokens=16).output_text
    assert "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="tiny", messages=HELLO, max_tokens=3, stream=True) if c.choices)


def test_the_sdk_waits_retry_after_and_gets_its_answer(http, hold):
    """What a user's script sees with the SDK's default retries: no error, the answer comes after the wait."""
    go, waiting = fill(http, hold)
    refusals = []

    def on_response(response):  # the 429 seen: the queue drains while the SDK waits
        if response.status_code == 429:
            refusals.append(response.headers["retry-after"])
            go.set()

    http.event_hooks = {"request": [], "response": [on_response]}
    answer = sdk(http, max_retries=2).chat.completions.create(model="tiny", messages=HELLO, max_tokens=3)
    assert answer.choices[0].message.content
    assert refusals and all(int(seconds) >= 1 for seconds in refusals)
    drain(go, waiting)


def test_n_counts_each_sequence_and_an_empty_room_takes_any_n(http, hold):
    client = sdk(http)
    assert client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=2).choices
    go = hold()
    many = in_thread(lambda: client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=2, n=3))
    wait_until(lambda: admission(http).waiting == 3, "the three sequences of n=3 waiting")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=2)
    (answer,) = drain(go, [many])
    assert len(answer.choices) == 3 and admission(http).waiting == 0


def test_normal_traffic_gives_every_place_back(http):
    """Answers, streams, n > 1, and requests refused for other reasons (400, 404) leave the room empty."""
    client = sdk(http)
    for _ in range(LIMIT + 1):  # more requests in a row than the room holds: none is refused
        assert client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=2, n=2).choices
        assert list(client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=2, stream=True))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=2, logit_bias={"1": 5})
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="ft:tiny:local::ftjob-absent", messages=HELLO, max_tokens=2)
    assert admission(http).waiting == 0


def test_retry_after_is_the_time_the_waiting_sequences_need_at_the_recent_pace():
    now = [0.0]
    room = Admission(4, clock=lambda: now[0])
    waiting = [room.enter() for _ in range(4)]
    assert room.waiting == 4
    with pytest.raises(QueueFull) as full:
        room.enter()
    assert full.value.retry_after == 1 and full.value.waiting == 4  # no pace known yet (the model may be loading)

    for _ in range(10):  # 10 sequences start in 5 s: 2 a second
        waiting.pop(0).started()
        waiting.append(room.enter())
        now[0] += 0.5
    assert room.waiting == 4 and room.retry_after() == 2  # 4 waiting at 2 a second
    now[0] += Admission.WINDOW + 1  # an old pace is forgotten
    assert room.retry_after() == 1


def test_retry_after_stays_within_what_the_sdk_honours():
    now = [0.0]
    room = Admission(1000, clock=lambda: now[0])
    room.enter().started()
    now[0] = 29.0
    room.enter().started()  # 2 starts in 29 s: slow
    waiting = [room.enter() for _ in range(999)]
    assert room.waiting == len(waiting) and room.retry_after() == Admission.MAX_RETRY_AFTER


def test_a_dropped_ticket_gives_its_places_back():
    """A stream whose client went away before it began holds no place (the ticket is closed when dropped)."""
    room = Admission(1)
    ticket = room.enter(3)
    ticket.started()
    assert room.waiting == 2
    del ticket
    assert room.waiting == 0
    room.enter().close()
    assert room.waiting == 0
