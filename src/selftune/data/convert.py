"""Convert other data formats to hosted chat JSONL (one ``{"messages": [...]}`` per line).

People arrive with a spreadsheet export or a legacy OpenAI prompt/completion file; rewriting
them by hand is where mistakes creep in. Conversion streams the input once, writes the output
atomically (the destination is either untouched or complete), and reports every bad row
with its line, a stable code and the column or key at fault.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, computed_field

from selftune.data.problems import Problem, json_type
from selftune.data.reader import MAX_LINE_BYTES, open_input, read_jsonl, same_file
from selftune.errors import SelftuneError
from selftune.store.atomic import atomic_write

MAX_PROBLEMS = 100
LEGACY_KEYS = ("prompt", "completion")

Record = dict[str, Any]
# What a reader yields per input row: the converted record, or everything wrong with the row.
Row = Record | list[Problem]


class ConversionSummary(BaseModel):
    """What a conversion did; ``written`` is 0 and ``dest`` untouched when it was refused."""

    source: str
    dest: str
    written: int = 0
    skipped: int = Field(0, description="input rows left out because they had problems")
    skip_invalid: bool = False
    problems: list[Problem] = Field(default_factory=list, description=f"the first {MAX_PROBLEMS} problems")
    problems_not_shown: int = 0

    @computed_field
    @property
    def ok(self) -> bool:
        """True when ``dest`` was written: nothing was wrong, or bad rows were to be skipped."""
        return not self.problems or self.skip_invalid

    @computed_field
    @property
    def problem_count(self) -> int:
        return len(self.problems) + self.problems_not_shown


class _Abort(Exception):
    """Raised inside ``atomic_write`` so that it deletes its temporary file."""


# --- public API ---------------------------------------------------------------------------


def convert_csv(src: Path, dest: Path, *, user_column: str, assistant_column: str,
                system_prompt: str | None = None, delimiter: str = ",", force: bool = False,
                skip_invalid: bool = False) -> ConversionSummary:
    """Turn each CSV row into one chat example: [system], user from one column, assistant from another."""
    src, dest = Path(src), Path(dest)
    if len(delimiter) != 1:
        raise SelftuneError(f"the delimiter must be one character, got {delimiter!r}")
    _check_system_prompt(system_prompt)
    _check_paths(src, dest, force)
    header = _csv_header(src, delimiter)
    user = (user_column, _column(header, user_column, src))
    assistant = (assistant_column, _column(header, assistant_column, src))
    rows = _csv_rows(src, header, user, assistant, system_prompt, delimiter)
    return _write(src, dest, rows, skip_invalid)


def convert_prompt_completion(src: Path, dest: Path, *, system_prompt: str | None = None, strip: bool = True,
                              force: bool = False, skip_invalid: bool = False) -> ConversionSummary:
    """Turn legacy ``{"prompt", "completion"}`` JSONL into chat examples (prompt -> user, completion -> assistant).

    ``strip`` removes surrounding whitespace, which the legacy format needed (completions began
    with a space, prompts often ended with a separator) and chat models don't.
    """
    src, dest = Path(src), Path(dest)
    _check_system_prompt(system_prompt)
    _check_paths(src, dest, force)
    rows = _legacy_rows(src, system_prompt, strip)
    return _write(src, dest, rows, skip_invalid)


# --- shared: checks before reading, atomic writing ----------------------------------------


def _check_paths(src: Path, dest: Path, force: bool) -> None:
    """Refuse early, before reading a byte, so a mistake costs nothing."""
    if same_file(src, dest):
        raise SelftuneError(f"{dest}: is the input file; write the converted data to another file")
    if dest.is_dir():
        raise SelftuneError(f"{dest}: is a directory, not a file")
    if dest.exists() and not force:
        raise SelftuneError(f"{dest} exists; pass --force to overwrite")
    open_input(src).close()  # a missing or unreadable input is a one-line error, not a traceback


def _check_system_prompt(system_prompt: str | None) -> None:
    if system_prompt is not None and not system_prompt.strip():
        raise SelftuneError("the system prompt is empty; leave it out instead")


def _write(src: Path, dest: Path, rows: Generator[Row, None, None], skip_invalid: bool) -> ConversionSummary:
    """Stream rows into ``dest``; on the first problem without ``skip_invalid``, abort but keep scanning."""
    summary = ConversionSummary(source=str(src), dest=str(dest), skip_invalid=skip_invalid)
    with contextlib.closing(rows):  # closes the input even when writing fails
        try:
            with atomic_write(dest, "wb") as out:
                for row in rows:
                    if isinstance(row, list):
                        _add_problems(summary, row)
                        if not skip_invalid:
                            raise _Abort
                        continue
                    out.write(_encode(row))
                    summary.written += 1
        except _Abort:
            summary.written = 0
            for row in rows:  # the generator is still open: report everything, write nothing
                if isinstance(row, list):
                    _add_problems(summary, row)
    return summary


def _add_problems(summary: ConversionSummary, problems: list[Problem]) -> None:
    summary.skipped += 1
    for problem in problems:
        if len(summary.problems) < MAX_PROBLEMS:
            summary.problems.append(problem)
        else:
            summary.problems_not_shown += 1


def _encode(record: Record) -> bytes:
    # Inputs are valid Unicode: strict UTF-8 for CSV, and the JSONL reader refuses lone surrogates.
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def _chat(system_prompt: str | None, user: str, assistant: str) -> Record:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages}


# --- CSV ------------------------------------------------------------------------------------


def _csv_header(src: Path, delimiter: str) -> list[str]:
    """The header row, read on its own so a wrong column name is refused before any writing."""
    with _field_size_limit(MAX_LINE_BYTES), _open_text(src) as f:
        header = _csv_next(csv.reader(f, delimiter=delimiter), src)
    if not header or not any(column.strip() for column in header):
        raise SelftuneError(f"{src}: the first line must be a header row naming the columns")
    return header


def _csv_rows(src: Path, header: list[str], user: tuple[str, int], assistant: tuple[str, int],
              system_prompt: str | None, delimiter: str) -> Generator[Row, None, None]:
    """One record or problem list per data row; ``user`` and ``assistant`` are (column name, index)."""
    with _field_size_limit(MAX_LINE_BYTES), _open_text(src) as f:
        reader = csv.reader(f, delimiter=delimiter)
        _csv_next(reader, src)  # the header, read already
        line = reader.line_num + 1
        while (row := _csv_next(reader, src)) is not None:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue  # a blank line, or a spreadsheet's empty row of ",,,"
            yield _csv_row(row, start, header, user, assistant, system_prompt)


def _csv_row(row: list[str], line: int, header: list[str], user: tuple[str, int], assistant: tuple[str, int],
             system_prompt: str | None) -> Row:
    if len(row) != len(header):
        return [Problem(code="malformed_row", line=line,
                        message=f"the row has {len(row)} fields but the header has {len(header)}; "
                                "check the delimiter and that fields holding it are quoted")]
    values, problems = [], []
    for name, at in (user, assistant):
        value = row[at].strip()
        if not value:
            problems.append(Problem(code="empty_value", line=line, field=name, message=f"column {name!r} is empty"))
        values.append(value)
    return problems or _chat(system_prompt, *values)


def _column(header: list[str], name: str, src: Path) -> int:
    """The index of a column, matched ignoring the spaces spreadsheets leave around names."""
    found = [i for i, column in enumerate(header) if column.strip() == name.strip()]
    if not found:
        columns = ", ".join(repr(column) for column in header)
        raise SelftuneError(f"{src}: has no column {name!r}; its columns are {columns}")
    if len(found) > 1:
        raise SelftuneError(f"{src}: has {len(found)} columns named {name!r}; rename them so one is meant")
    return found[0]


def _csv_next(reader, src: Path) -> list[str] | None:
    """The next row, or None at the end; unreadable input becomes a one-line error."""
    try:
        return next(reader)
    except StopIteration:
        return None
    except UnicodeDecodeError:
        raise SelftuneError(f"{src}: is not valid UTF-8 (near line {reader.line_num + 1}); "
                            "save it as UTF-8 (\"CSV UTF-8\" in spreadsheet programs)") from None
    except csv.Error as exc:
        raise SelftuneError(f"{src}:{reader.line_num}: not a readable CSV file: {exc}") from None


def _open_text(src: Path) -> io.TextIOWrapper:
    # utf-8-sig: spreadsheet programs put a BOM in front of "CSV UTF-8"; newline="": the csv
    # module handles line ends itself, so quoted fields may hold newlines.
    return io.TextIOWrapper(open_input(src), encoding="utf-8-sig", newline="")


@contextlib.contextmanager
def _field_size_limit(limit: int) -> Iterator[None]:
    """Raise the csv module's 128 KiB field limit, which a long answer can exceed, for one read."""
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, limit))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


# --- legacy prompt/completion JSONL -----------------------------------------------------


def _legacy_rows(src: Path, system_prompt: str | None, strip: bool) -> Generator[Row, None, None]:
    for line, value in read_jsonl(src):
        if isinstance(value, Problem):
            yield [value]
        else:
            yield _legacy_row(value, line, system_prompt, strip)


def _legacy_row(value: Any, line: int, system_prompt: str | None, strip: bool) -> Row:
    if not isinstance(value, dict):
        return [Problem(code="not_an_object", line=line,
                        message=f"each line must be a JSON object, got {json_type(value)}")]
    problems = [Problem(code="unexpected_field", line=line, field=key,
                        message=f"field {key!r} is not part of the prompt/completion format; remove it")
                for key in value if key not in LEGACY_KEYS]
    texts = []
    for key in LEGACY_KEYS:
        text, problem = _legacy_text(value, key, line, strip)
        texts.append(text)
        if problem is not None:
            problems.append(problem)
    return problems or _chat(system_prompt, *texts)


def _legacy_text(value: dict, key: str, line: int, strip: bool) -> tuple[str, Problem | None]:
    if key not in value:
        return "", Problem(code="missing_field", line=line, field=key, message=f"required field {key!r} is missing")
    text = value[key]
    if not isinstance(text, str):
        return "", Problem(code="wrong_type", line=line, field=key,
                           message=f"expected a string, got {json_type(text)}")
    if not text.strip():
        return "", Problem(code="empty_value", line=line, field=key, message=f"{key} is empty")
    return (text.strip() if strip else text), None


__all__ = ["ConversionSummary", "convert_csv", "convert_prompt_completion"]
