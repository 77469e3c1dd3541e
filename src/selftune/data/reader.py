"""Stream a JSONL file line by line, turning every unreadable line into a problem.

Reads bytes, so that memory stays flat on a multi-GB file, a bad byte is reported with its
line instead of aborting the whole read, and one enormous line can't exhaust memory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selftune.data.problems import Problem
from selftune.errors import SelftuneError

BOM = b"\xef\xbb\xbf"
MAX_LINE_BYTES = 64 * 1024 * 1024


def read_jsonl(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any | Problem]]:
    """Yield ``(line_number, decoded_json_or_problem)`` for every non-blank line."""
    with open_input(path) as f:
        number = 0
        while raw := f.readline(max_line_bytes + 1):
            number += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                _skip_rest_of_line(f)
                yield number, Problem(code="line_too_long", line=number,
                                      message=f"line is longer than {max_line_bytes:,} bytes")
                continue
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            raw = raw.strip()  # also drops the \r of CRLF line ends
            if raw:
                yield number, _decode(raw, number)


def open_input(path: Path):
    """Open a file for reading, with a one-line error (never a traceback) when it can't be."""
    path = Path(path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise SelftuneError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SelftuneError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise SelftuneError(f"{path}: can't be read ({exc.strerror})") from None


def _decode(raw: bytes, number: int) -> Any | Problem:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Problem(code="invalid_utf8", line=number,
                       message=f"byte {exc.start + 1} of the line is not valid UTF-8; save the file as UTF-8")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return Problem(code="invalid_json", line=number, message=f"not valid JSON: {exc.msg} at column {exc.colno}")
    except ValueError as exc:
        return Problem(code="invalid_json", line=number, message=f"not valid JSON: {exc}")
    if _LONE_SURROGATE_HINT.search(raw) and not _encodable(value):
        return Problem(code="invalid_unicode", line=number,
                       message="a \\uD800-\\uDFFF escape that is not part of a surrogate pair is not valid Unicode")
    return value


# JSON may spell a lone UTF-16 surrogate as an escape; Python decodes it into a string that can't be
# encoded again. Only lines with such an escape pay for the deep check.
_LONE_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]")


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _skip_rest_of_line(f) -> None:
    while chunk := f.readline(1 << 20):
        if chunk.endswith(b"\n"):
            return


def same_file(a: Path, b: Path) -> bool:
    """True when two paths name one file (so an output would overwrite its own input)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links, case-insensitive file systems
    except OSError:
        return False
