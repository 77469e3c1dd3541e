"""The one error shape of the hosted API: ``{"error": {"message", "type", "param", "code"}}``.

Services raise :class:`APIError`; the handlers here turn it, FastAPI's validation errors and unknown
routes into that shape, so the SDK raises its own typed exceptions (BadRequestError, NotFoundError...).
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from selftune.store.atomic import DiskFull
from selftune.store.db import DatabaseBusy


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """What every 4xx (and the rare 5xx) carries: the schema of :meth:`APIError.body`, for the OpenAPI
    document, so generated clients and the contract fuzzer know it."""

    error: ErrorDetail


WHY = {400: "Invalid request: `param` names the field.", 401: "Missing or unknown API key.",
       403: "Not allowed on this object.", 404: "No such object (or another organisation's: the same answer).",
       409: "The object is in a state that forbids this.", 413: "The upload is larger than the server's limit.",
       429: "Too many requests wait for the model: retry after `Retry-After` seconds (the openai SDK does)."}


def error_responses(*statuses: int) -> dict:
    """The ``responses=`` of a route that may answer ``statuses`` (plus 400 and 401, which every /v1 route
    may) in the error shape."""
    responses = {status: {"model": ErrorBody, "description": WHY[status]} for status in sorted({400, 401, *statuses})}
    if 429 in responses:
        responses[429]["headers"] = {"Retry-After": {"description": "Seconds to wait before trying again (1-60).",
                                                     "schema": {"type": "integer"}}}
    return responses


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def not_found(kind: str, id_: str, param: str | None = None) -> APIError:
    """The answer for something absent and for something another organisation owns: identical."""
    code = kind.replace(" ", "_").replace("-", "_") + "_not_found"
    return APIError(404, f"No such {kind}: '{id_}'", param=param, code=code)


def rate_limited(message: str, retry_after: int) -> APIError:
    """A 429 as the hosted API sends for its request rate limits (``type: requests``, code
    ``rate_limit_exceeded``), with ``Retry-After`` in whole seconds: the openai SDK waits that long and
    sends the request again (twice by default) before it raises ``RateLimitError``."""
    return APIError(429, message, type="requests", code="rate_limit_exceeded",
                    headers={"Retry-After": str(retry_after)})


def refuse_unsupported(extra: dict | None, not_yet) -> None:
    """A request's fields beyond its model: one selftune knows but does not do yet (``not_yet``) is
    ``unsupported_parameter``, any other ``unknown_parameter``, as the hosted API words them."""
    extra = extra or {}
    for name in not_yet:
        if extra.get(name) is not None:
            raise bad_request(f"{name} is not supported yet by selftune.", param=name, code="unsupported_parameter")
    unknown = sorted(set(extra) - set(not_yet))
    if unknown:
        raise bad_request(f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0],
                          code="unknown_parameter")


def invalid_value(errors) -> APIError:
    """The first of pydantic's ``errors()`` as a 400 naming its field: what a request body that does not
    parse gets (the API's handler, and the dashboard's forms built on the same request models)."""
    first = errors[0] if errors else {}
    param = _param_of(first)
    # a value no member of a union accepts gets one error per member: say them together
    wanted = [e.get("msg", "") for e in errors if _param_of(e) == param]
    if len(wanted) > 1 and all(w.startswith(_SHOULD) for w in wanted):
        said = [w.removeprefix(_SHOULD).split(",")[0] for w in wanted]
        reason = _SHOULD + (", ".join(said[:-1]) + " or " + said[-1])
    else:
        reason = str(first.get("msg", "invalid request"))
    message = f"{param}: {reason}" if param else reason
    return APIError(400, message, param=param, code="invalid_value")


_SHOULD = "Input should be "
# the parts of a pydantic error location that name a union member, not a field: literal['auto'], int, ...
_UNION_MEMBER = re.compile(r"^([a-z-]+\[.*\]|int|float|str|bool|bytes|list|dict|none)$")


def _param_of(error: dict) -> str | None:
    location = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "form")]
    return ".".join(p for p in location if not _UNION_MEMBER.match(p)) or None


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(DatabaseBusy)  # SQLite's write lock held past the busy timeout: retry, not a 500
    async def _busy(_request: Request, exc: DatabaseBusy):
        return JSONResponse(APIError(503, str(exc), type="server_error", code="database_busy").body(),
                            status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(DiskFull)  # the path is the server's business: the message names none
    async def _disk_full(_request: Request, _exc: DiskFull):
        return JSONResponse(APIError(507, "No space left on the server's disk: nothing was written. Try again "
                                          "once space is freed.", type="server_error", code="disk_full").body(),
                            status_code=507)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        return JSONResponse(invalid_value(exc.errors()).body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = "Unknown request URL" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(APIError(exc.status_code, message, code=code).body(), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
