"""How often two models give the same answer: the figure that says whether a new model can stand in
for an old one (a migrated fine-tune for its hosted original, a student for its teacher), with or
without reference answers."""

from __future__ import annotations

import json

from selftune.evals.graders.exact import normalise
from selftune.evals.stats import bootstrap_ci


def same_answer(a: str, b: str) -> bool:
    """Equal as parsed JSON when both answers are JSON (key order and spacing don't count), else equal
    after normalising case, Unicode form, whitespace and surrounding punctuation."""
    parsed = []
    for text in (a, b):
        try:
            parsed.append(json.loads(text))
        except (json.JSONDecodeError, TypeError):
            break
    else:
        return parsed[0] == parsed[1]
    return normalise(a) == normalise(b)


def agreement(answers: list[str], others: list[str]) -> tuple[float, tuple[float, float]]:
    """Share of examples on which the two lists of answers agree, and its 95% bootstrap interval."""
    if len(answers) != len(others):
        raise ValueError(f"{len(answers)} answers against {len(others)}: agreement needs the same examples")
    hits = [float(same_answer(a, b)) for a, b in zip(answers, others, strict=True)]
    return (sum(hits) / len(hits) if hits else float("nan")), bootstrap_ci(hits)
