"""Exact and normalised string match."""

from __future__ import annotations

import re
import string
import unicodedata

from selftune.evals.graders.base import Grader

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Case, Unicode form, runs of whitespace and surrounding punctuation don't count."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", text).strip().strip(string.punctuation + " ")


class ExactMatch(Grader):
    name = "exact"
    description = "1 if the answer equals the reference (surrounding whitespace ignored), else 0"

    def score(self, answer: str, reference: str) -> float:
        return float(answer.strip() == reference.strip())


class NormalisedMatch(Grader):
    name = "normalized"
    description = "exact match after folding case, Unicode form, whitespace and surrounding punctuation"

    def score(self, answer: str, reference: str) -> float:
        return float(normalise(answer) == normalise(reference))
