"""The input file of a batch, line by line: each line a request, or the reason it can't be one.

A malformed line does not fail the batch here (hosted fails the whole file): it becomes a line of the
error file naming its line number, and every good line still runs. A file with no good line at all, or
with more lines than a batch may hold, fails the batch (:class:`BadInput`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from selftune.api.batches.protocol import MAX_REQUESTS

FIELDS = ("custom_id", "method", "url", "body")


class BadInput(Exception):
    """The file as a whole can't be a batch: ``code`` and ``message`` go into the batch's ``errors``."""

    def __init__(self, code: str, message: str, line: int | None = None):
        super().__init__(message)
        self.code, self.message, self.line = code, message, line


@dataclass(frozen=True)
class Line:
    """Line ``line`` (1-based) of the file: ``body`` to send, or ``error`` ({code, message, line})."""

    line: int
    custom_id: str | None
    body: dict | None = None
    error: dict | None = None


def read_lines(path: Path, endpoint: str) -> Iterator[Line]:
    """Every non-blank line of ``path`` as a :class:`Line`, streamed (a 200 MB file is never held whole).
    Raises :class:`BadInput` past :data:`MAX_REQUESTS` lines; the caller checks that one line was good."""
    seen: set[str] = set()
    count = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            count += 1
            if count > MAX_REQUESTS:
                raise BadInput("too_many_requests", f"A batch may hold at most {MAX_REQUESTS:,} requests; this file "
                                                    f"has more (line {number} is request {count}).", number)
            yield _parsed(number, raw, endpoint, seen)


def _parsed(number: int, raw: bytes, endpoint: str, seen: set[str]) -> Line:
    def bad(code: str, message: str, custom_id: str | None = None) -> Line:
        return Line(number, custom_id, error={"code": code, "message": f"Line {number}: {message}", "line": number})

    try:
        request = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as problem:
        return bad("invalid_json_line", f"not valid JSON ({problem}).")
    if not isinstance(request, dict):
        return bad("invalid_json_line", "a request is a JSON object with custom_id, method, url and body.")
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return bad("missing_required_parameter", "custom_id is missing or not a non-empty string.")
    if custom_id in seen:
        return bad("duplicate_custom_id", f"custom_id {custom_id!r} is used by an earlier line; each request needs "
                                          "its own.", custom_id)
    seen.add(custom_id)
    unknown = sorted(set(request) - set(FIELDS))
    if unknown:
        return bad("unknown_parameter", f"unknown field {unknown[0]!r} (a request line has {', '.join(FIELDS)}).",
                   custom_id)
    missing = [name for name in FIELDS if name not in request]
    if missing:
        return bad("missing_required_parameter", f"{missing[0]} is missing (a request line has "
                                                 f"{', '.join(FIELDS)}).", custom_id)
    if request.get("method") != "POST":
        return bad("invalid_method", f"method must be 'POST', not {request.get('method')!r}.", custom_id)
    if request.get("url") != endpoint:
        return bad("invalid_url", f"url {request.get('url')!r} is not this batch's endpoint {endpoint!r}.",
                   custom_id)
    body = request.get("body")
    if not isinstance(body, dict):
        return bad("missing_required_parameter", "body is missing or not a JSON object.", custom_id)
    return Line(number, custom_id, body=body)
