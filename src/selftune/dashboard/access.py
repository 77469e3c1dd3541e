"""Who is looking: the organisation behind a dashboard request, sign-in with an API key, and CSRF.

- Local mode (no ``SELFTUNE_API_KEYS``; the server only listens on loopback): everyone is the
  organisation ``local`` and there is no sign-in; a session is still made, for its CSRF token.
- With keys: the login form takes a key, :func:`selftune.api.auth.org_for_key` (the API's own rule)
  names its organisation, and the browser gets a fresh session id in an HttpOnly, SameSite=Strict
  cookie. The key itself is never stored, put in a URL, or written into a page.
- Every POST carries the session's CSRF token (a form field or the ``X-CSRF-Token`` header htmx
  sends), and a POST whose ``Origin`` or ``Sec-Fetch-Site`` says it came from another site is refused.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.responses import Response

from selftune.api.auth import LOCAL_ORG
from selftune.dashboard.sessions import COOKIE, Session, SessionStore

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


class SignInRequired(Exception):
    """Keys are configured and this browser has not signed in (pages go to the login form)."""


class CsrfRefused(Exception):
    """A POST without this session's token, or sent from another site."""


@dataclass
class Viewer:
    org: str
    session: Session
    new: bool  # made by this request: the answer must set the cookie


def sessions(request: Request) -> SessionStore:
    return request.app.state.dashboard_sessions


def keyed(request: Request) -> bool:
    return request.app.state.api_keys is not None


def viewer(request: Request) -> Viewer:
    """FastAPI dependency: the signed-in organisation (local mode: ``local``), or SignInRequired."""
    store = sessions(request)
    session = store.get(request.cookies.get(COOKIE))
    if not keyed(request):
        if session is None or session.org != LOCAL_ORG:
            return Viewer(LOCAL_ORG, store.create(LOCAL_ORG), new=True)
        return Viewer(LOCAL_ORG, session, new=False)
    if session is None or session.org is None:
        raise SignInRequired
    return Viewer(session.org, session, new=False)


def check_csrf(request: Request, session: Session | None, token: object) -> None:
    """Refuse a state-changing request that this session's own page did not send."""
    if session is None or not isinstance(token, str) or not hmac.compare_digest(token.encode(),
                                                                                session.csrf.encode()):
        raise CsrfRefused
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CsrfRefused
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise CsrfRefused


async def posted_by_viewer(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Viewer:
    """FastAPI dependency for POST routes: the viewer, once the request's CSRF token checks out."""
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        token = (await request.form()).get(CSRF_FIELD)
    check_csrf(request, None if who.new else who.session, token)
    return who


Who = Annotated[Viewer, Depends(viewer)]
PostedBy = Annotated[Viewer, Depends(posted_by_viewer)]


def set_session_cookie(response: Response, request: Request, session: Session) -> None:
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
