"""JSON: the answer must be valid JSON; against a JSON-object reference, the share of its fields
the answer gets right (field by field, so a half-right extraction scores 0.5)."""

from __future__ import annotations

import json
from collections import defaultdict

from selftune.evals.graders.base import Grader


def _parse(text: str):
    try:
        return json.loads(text), True
    except json.JSONDecodeError:
        return None, False


class JsonFields(Grader):
    name = "json"
    description = "valid JSON; for object references, the fraction of reference fields matched"

    def score(self, answer: str, reference: str) -> float:
        got, valid = _parse(answer.strip())
        if not valid:
            return 0.0
        expected, reference_is_json = _parse(reference.strip())
        if not reference_is_json:
            return 1.0  # the reference is not JSON: only validity is graded
        if isinstance(expected, dict) and expected:
            if not isinstance(got, dict):
                return 0.0
            return sum(got.get(key) == value for key, value in expected.items()) / len(expected)
        return float(got == expected)

    def summary(self, answers: list[str], references: list[str], scores: list[float]) -> dict:
        valid = [_parse(a.strip())[1] for a in answers]
        fields: dict[str, list[bool]] = defaultdict(list)
        for answer, reference in zip(answers, references, strict=True):
            expected, ok = _parse(reference.strip())
            if ok and isinstance(expected, dict):
                got, _ = _parse(answer.strip())
                for key, value in expected.items():
                    fields[key].append(isinstance(got, dict) and got.get(key) == value)
        return {"valid_json": sum(valid) / len(valid) if valid else 0.0,
                "field_accuracy": {key: sum(hits) / len(hits) for key, hits in sorted(fields.items())}}
