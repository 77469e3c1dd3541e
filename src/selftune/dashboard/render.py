"""Templates and the headers every dashboard answer carries.

Autoescape is on for every template, and no template marks user data ``|safe``: file names, suffixes,
metadata and messages are shown as text. The Content-Security-Policy allows scripts and styles only
from the dashboard's own files, so even a string that escaped escaping could not run.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from selftune.dashboard.access import Viewer, keyed, set_session_cookie

HERE = Path(__file__).parent
STATIC = HERE / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # an organisation's pages stay out of shared caches and the back-button cache
}


def utc(seconds: int | float | None) -> str:
    if not seconds:
        return "—"
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(seconds: int | float | None) -> str:
    if not seconds:
        return "—"
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%H:%M:%S UTC")


def duration(seconds: int | float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def number(value: int | float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(utc=utc, clock=clock, duration=duration, number=number)
    env.globals["now"] = time.time
    return env


templates = Jinja2Templates(env=_environment())


def secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def render(request: Request, who: Viewer, name: str, status_code: int = 200, **context) -> Response:
    """A page or fragment for ``who``, with the session cookie when this request made the session."""
    response = templates.TemplateResponse(request, name, {"who": who, "keyed": keyed(request),
                                                          "csrf": who.session.csrf, **context},
                                          status_code=status_code)
    if who.new:
        set_session_cookie(response, request, who.session)
    return secure(response)
