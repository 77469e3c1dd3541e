"""Browser sessions of the dashboard: a random id in a cookie, the organisation on the server.

The cookie holds only an unguessable session id; the map from id to organisation (and the session's
CSRF token) lives in this process's memory, so the API key is never stored in the browser and a
restart logs everyone out (they sign in again with their key). A session that has not signed in yet
(``org`` None) exists only to carry the login form's CSRF token.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

COOKIE = "selftune_session"
SIGNED_IN_SECONDS = 12 * 3600  # idle time after which a signed-in session ends
ANONYMOUS_SECONDS = 3600  # a login form left open this long must be reloaded
MAX_SESSIONS = 10_000  # the oldest go first: a flood of login-page loads can't grow memory without bound


@dataclass
class Session:
    id: str
    org: str | None  # None until signed in
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: float = field(default_factory=lambda: time.monotonic())

    @property
    def lifetime(self) -> float:
        return SIGNED_IN_SECONDS if self.org is not None else ANONYMOUS_SECONDS


class SessionStore:
    """Thread-safe: routes run on FastAPI's thread pool."""

    def __init__(self, max_sessions: int = MAX_SESSIONS):
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_sessions

    def create(self, org: str | None) -> Session:
        session = Session(id=secrets.token_urlsafe(32), org=org)
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (its idle clock restarts), or None."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            now = time.monotonic()
            if now - session.seen > session.lifetime:
                del self._sessions[session_id]
                return None
            session.seen = now
            self._sessions.move_to_end(session_id)
            return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)
