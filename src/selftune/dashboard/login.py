"""Sign in with an API key (only when the server has ``SELFTUNE_API_KEYS``), and sign out.

The login form's own session carries its CSRF token (so another site can't sign a browser in to its
own organisation); a good key ends that session and starts a new signed-in one, so a session id seen
before sign-in is worth nothing after it. Failed sign-ins are limited per client address
(:mod:`selftune.dashboard.throttle`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from selftune.api.auth import org_for_key
from selftune.dashboard.access import CSRF_FIELD, PostedBy, Viewer, check_csrf, keyed, sessions, set_session_cookie
from selftune.dashboard.render import render, secure
from selftune.dashboard.sessions import COOKIE
from selftune.dashboard.throttle import SignInThrottle

router = APIRouter(include_in_schema=False)


def _home() -> RedirectResponse:
    return secure(RedirectResponse("/", status_code=303))


@router.get("/login")
def login_form(request: Request):
    if not keyed(request):
        return _home()  # local mode: nobody signs in
    store = sessions(request)
    session = store.get(request.cookies.get(COOKIE))
    if session is not None and session.org is not None:
        return _home()
    if session is None:
        return render(request, Viewer("", store.create(None), new=True), "login.html", problem=None)
    return render(request, Viewer("", session, new=False), "login.html", problem=None)


@router.post("/login")
async def login(request: Request):
    if not keyed(request):
        return _home()
    store = sessions(request)
    form = await request.form()
    session = store.get(request.cookies.get(COOKIE))
    check_csrf(request, session, form.get(CSRF_FIELD))
    address = request.client.host if request.client else ""
    throttle: SignInThrottle = request.app.state.dashboard_sign_ins
    wait = throttle.wait_seconds(address)
    if wait:
        return render(request, Viewer("", session, new=False), "login.html", status_code=429,
                      problem=f"Too many failed sign-ins from this address: try again in {wait} s.")
    key = form.get("api_key")
    org = org_for_key(request.app.state.api_keys, key) if isinstance(key, str) and key.strip() else None
    if org is None:
        throttle.failed(address)
        return render(request, Viewer("", session, new=False), "login.html", status_code=401,
                      problem="That API key is not valid.")  # never echoed: the key is not in the page
    store.end(session.id)
    signed_in = store.create(org)
    response = _home()
    set_session_cookie(response, request, signed_in)
    return response


@router.post("/logout")
def logout(request: Request, who: PostedBy):
    sessions(request).end(who.session.id)
    response = secure(RedirectResponse("/login" if keyed(request) else "/", status_code=303))
    response.delete_cookie(COOKIE, path="/")
    return response
