"""The web dashboard at ``/``: jobs, one job's live curves, events and checkpoints, and its controls.

Server-rendered Jinja2 pages with htmx (polling small fragments) and uPlot for the curves, both
vendored under ``static/vendor`` with their licences: no CDN, no build step. Pages read the same
services as the API (:mod:`selftune.api`), never the engine or the tables.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from selftune.dashboard import compare, evaluations, library, login, new_job, playground, views
from selftune.dashboard.access import CsrfRefused, SignInRequired
from selftune.dashboard.render import STATIC, secure
from selftune.dashboard.sessions import SessionStore
from selftune.dashboard.throttle import SignInThrottle


def mount(app: FastAPI) -> None:
    """Add the dashboard's routes, static files and session store to the API's app."""
    app.state.dashboard_sessions = SessionStore()
    app.state.dashboard_sign_ins = SignInThrottle()
    app.include_router(login.router)
    app.include_router(views.router)
    app.include_router(evaluations.router)
    app.include_router(playground.router)
    app.include_router(library.router)
    app.include_router(new_job.router)
    app.include_router(compare.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="dashboard-static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _exc: SignInRequired):
        if "hx-request" in request.headers or request.url.path.endswith(".json"):
            # a poll or the curves: htmx follows HX-Redirect; the chart script goes to /login on 401
            return secure(JSONResponse({"error": "sign in"}, status_code=401, headers={"HX-Redirect": "/login"}))
        return secure(RedirectResponse("/login", status_code=303))

    @app.exception_handler(CsrfRefused)
    async def _csrf(_request: Request, _exc: CsrfRefused):
        return secure(HTMLResponse("Refused: this form is out of date or came from another site. Reload the "
                                   "page and try again.", status_code=403))
