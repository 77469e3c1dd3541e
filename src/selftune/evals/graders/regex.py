"""Regex: the answer must match a pattern (``--grader 'regex:^\\d{4}-\\d{2}-\\d{2}$'``)."""

from __future__ import annotations

import re

from selftune.errors import SelftuneError
from selftune.evals.graders.base import Grader


class RegexMatch(Grader):
    name = "regex"
    needs_argument = True
    description = "1 if the answer matches the pattern (re.search), else 0; the reference is not used"

    def __init__(self, argument, context):
        super().__init__(argument, context)
        try:
            self.pattern = re.compile(argument)
        except re.error as exc:
            raise SelftuneError(f"--grader regex: {argument!r} is not a valid regular expression: {exc}") from None

    def score(self, answer: str, reference: str) -> float:
        return float(self.pattern.search(answer) is not None)
