"""Failed sign-ins are limited per client address, so the login form can't be used to guess keys.

Keys are long random strings, so guessing is hopeless anyway; the limit also keeps a script that
hammers the form from costing the server a key comparison per request. Successful sign-ins are not
counted. The counts live in this process's memory, like the sessions.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

MAX_FAILURES = 10  # failed sign-ins allowed per address within WINDOW_SECONDS
WINDOW_SECONDS = 300
MAX_ADDRESSES = 10_000  # the least recently failing addresses are forgotten first


class SignInThrottle:
    """Thread-safe sliding window of failure times per client address."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS,
                 max_addresses: int = MAX_ADDRESSES):
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_failures, self.window, self._max_addresses = max_failures, window, max_addresses

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.get(address, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def wait_seconds(self, address: str) -> int:
        """0 when ``address`` may try again now, else the whole seconds until it may."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(address, now)
            if len(times) < self.max_failures:
                return 0
            return max(1, int(times[0] + self.window - now + 0.999))

    def failed(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._recent(address, now)
            times.append(now)
            self._failures[address] = times
            self._failures.move_to_end(address)
            while len(self._failures) > self._max_addresses:
                self._failures.popitem(last=False)
