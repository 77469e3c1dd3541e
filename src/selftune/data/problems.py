"""What a check finds: problems with a line, a stable code, a field path and a reason."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

Severity = Literal["error", "warning"]
Purpose = Literal["sft", "dpo"]


class Problem(BaseModel):
    severity: Severity = "error"
    code: str = Field(description="stable snake_case identifier; see docs/data.md")
    line: int | None = Field(None, description="1-based line in the file; None for the whole file")
    field: str | None = Field(None, description="path inside the line, e.g. messages[2].role")
    message: str

    def format(self, filename: str) -> str:
        """``file:line: field: code: reason``, the shape editors and grep understand."""
        where = f"{filename}:{self.line}" if self.line is not None else filename
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.code}: {self.message}"


class Report(BaseModel):
    """The outcome of :func:`selftune.data.check`. ``valid`` is False iff there is an error."""

    path: str
    purpose: Purpose | None = None
    examples: int = Field(0, description="non-blank lines")
    valid_examples: int = 0
    errors: list[Problem] = Field(default_factory=list, description="the first max_problems errors")
    warnings: list[Problem] = Field(default_factory=list)
    errors_not_shown: int = Field(0, description="errors found beyond the ones listed")
    warnings_not_shown: int = 0
    lines_with_errors: int = 0

    @computed_field
    @property
    def valid(self) -> bool:
        return not self.errors

    @computed_field
    @property
    def error_count(self) -> int:
        return len(self.errors) + self.errors_not_shown

    @computed_field
    @property
    def warning_count(self) -> int:
        return len(self.warnings) + self.warnings_not_shown

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


class ReportBuilder:
    """Collects problems while a file streams past, keeping at most ``max_problems`` of each kind."""

    def __init__(self, path: str, max_problems: int = 100):
        self.report = Report(path=path)
        self.max_problems = max_problems

    def add(self, problem: Problem) -> None:
        shown, skipped = ("errors", "errors_not_shown") if problem.severity == "error" else (
            "warnings", "warnings_not_shown")
        listed = getattr(self.report, shown)
        if len(listed) < self.max_problems:
            listed.append(problem)
        else:
            setattr(self.report, skipped, getattr(self.report, skipped) + 1)


def json_type(value: Any) -> str:
    """How a decoded JSON value is named in a problem's reason ("a number", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def count_of(n: int, noun: str) -> str:
    """``1 example``, ``2 examples``: the counts users read in summaries."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
