"""The server-side session map: ids are random, idle sessions end, and the store never grows past its bound;
the failed sign-in limit per address."""

from __future__ import annotations

from selftune.dashboard import sessions as sessions_module
from selftune.dashboard.sessions import ANONYMOUS_SECONDS, SIGNED_IN_SECONDS, SessionStore


def test_sessions_end_when_idle_and_the_oldest_go_first(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(sessions_module.time, "monotonic", lambda: clock[0])
    store = SessionStore(max_sessions=3)
    signed_in, anonymous = store.create("org-a"), store.create(None)
    assert signed_in.id != anonymous.id and len(signed_in.id) >= 40 and signed_in.csrf != anonymous.csrf
    clock[0] += ANONYMOUS_SECONDS + 1
    assert store.get(anonymous.id) is None  # a login form left open too long
    assert store.get(signed_in.id) is signed_in  # ... and using it restarts the idle clock
    clock[0] += SIGNED_IN_SECONDS - 1
    assert store.get(signed_in.id) is signed_in
    clock[0] += SIGNED_IN_SECONDS + 1
    assert store.get(signed_in.id) is None

    first, second, third, fourth = (store.create("org-a") for _ in range(4))
    assert store.get(first.id) is None and store.get(fourth.id) is fourth  # bounded: the oldest went
    store.end(fourth.id)
    assert store.get(fourth.id) is None and store.get(None) is None and store.get("") is None


def test_failed_sign_ins_slide_out_of_the_window_and_addresses_are_bounded(monkeypatch):
    from selftune.dashboard import throttle as throttle_module
    from selftune.dashboard.throttle import SignInThrottle

    clock = [500.0]
    monkeypatch.setattr(throttle_module.time, "monotonic", lambda: clock[0])
    throttle = SignInThrottle(max_failures=2, window=60, max_addresses=2)
    throttle.failed("10.0.0.1")
    clock[0] += 30
    throttle.failed("10.0.0.1")
    assert throttle.wait_seconds("10.0.0.1") == 30 and throttle.wait_seconds("10.0.0.2") == 0
    clock[0] += 30  # the first failure leaves the window
    assert throttle.wait_seconds("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    assert throttle.wait_seconds("10.0.0.1") == 30
    throttle.failed("10.0.0.2")
    throttle.failed("10.0.0.3")  # a third address: the least recently failing one is forgotten
    assert throttle.wait_seconds("10.0.0.1") == 0
