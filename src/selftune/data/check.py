"""``check(path) -> Report``: is this file fit to fine-tune on? The function the server calls on upload.

Free of CLI concerns: it never prints and never exits; every problem is in the report.
"""

from __future__ import annotations

from pathlib import Path

from selftune.data.problems import Problem, Purpose, Report, ReportBuilder, count_of
from selftune.data.reader import read_jsonl
from selftune.data.validation import detect_purpose, validate_line
from selftune.errors import SelftuneError

MIN_EXAMPLES = 10  # the hosted service refuses files with fewer
LINES_LISTED = 20  # how many line numbers a summary warning spells out


def check(path: str | Path, purpose: Purpose | None = None, model: str | None = None,
          max_problems: int = 100) -> Report:
    """Validate a chat (``sft``) or preference (``dpo``) JSONL file, streaming it once.

    ``purpose`` is taken from the first readable line when not given. With ``model``, examples
    longer than that model's context (rendered with its chat template) are reported as a warning.
    Raises :class:`SelftuneError` only when the file can't be opened at all.
    """
    builder = ReportBuilder(str(path), max_problems)
    report = builder.report
    counter = _token_counter(model)
    too_long: list[int] = []
    bad_lines = 0

    for line, value in read_jsonl(Path(path)):
        report.examples += 1
        if purpose is None and not isinstance(value, Problem):
            purpose = detect_purpose(value) or "sft"
        if isinstance(value, Problem):
            problems, example = [value], None
        else:
            example, problems = validate_line(value, purpose or "sft", line)
        for problem in problems:
            builder.add(problem)
        if example is None:
            bad_lines += 1
            continue
        report.valid_examples += 1
        if counter is not None and counter.overflow(example) is not None:
            too_long.append(line)

    report.purpose = purpose
    report.lines_with_errors = bad_lines
    if report.examples < MIN_EXAMPLES:
        builder.add(Problem(code="too_few_examples",
                            message=f"the file has {report.examples} examples; at least {MIN_EXAMPLES} are needed"))
    if too_long:
        builder.add(_too_long_warning(too_long, counter.context))
    return report


def _token_counter(model: str | None):
    if model is None:
        return None
    from selftune.data.tokens import TokenCounter  # loads transformers: only when asked for

    return TokenCounter(model)


def _too_long_warning(lines: list[int], context: int) -> Problem:
    listed = ", ".join(str(n) for n in lines[:LINES_LISTED])
    more = f" and {len(lines) - LINES_LISTED} more" if len(lines) > LINES_LISTED else ""
    return Problem(
        severity="warning", code="too_long",
        message=f"{count_of(len(lines), 'example')} {'is' if len(lines) == 1 else 'are'} longer than the "
                f"model's context of {context} tokens and "
                f"will be truncated: line{'s' if len(lines) > 1 else ''} {listed}{more}",
    )


def iter_examples(path: str | Path, purpose: Purpose | None = None, ignore: frozenset[str] = frozenset()):
    """Yield ``(line, Example)`` for a file that passed :func:`check`; stops at the first bad line
    (rules named in ``ignore`` are not applied)."""
    for line, value in read_jsonl(Path(path)):
        if isinstance(value, Problem):
            raise SelftuneError(value.format(str(path)))
        purpose = purpose or detect_purpose(value) or "sft"
        example, problems = validate_line(value, purpose, line, ignore)
        if example is None:
            raise SelftuneError(problems[0].format(str(path)))
        yield line, example

