"""JSON: structured output graded the way an extraction is judged — is the answer valid JSON, is the
whole object right, and which fields are right, missing, invented or wrong.

An answer's score is 1 when its object equals the reference (every field, nothing more), so the
headline is the exact-object match. Field by field, nested objects are flattened to dotted paths
(``address.city``); a list or a scalar is one value. Each field of one example is *right* (same
value), *wrong* (a different value: counted once as a false positive and once as a false negative),
*missing* (a false negative) or *extra* (a field the text doesn't state: a false positive). Precision,
recall and F1 are pooled over all fields (micro) and per field, with bootstrap intervals over the
examples. An answer that is not JSON, or not an object where the reference is one, misses every field.

Values compare as JSON values: ``1`` equals ``1.0`` but not ``true``, and strings must match exactly
(a canonical value, not a paraphrase of it).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from selftune.evals.graders.base import Grader
from selftune.evals.stats import bootstrap_ratio_ci

RIGHT, WRONG, MISSING, EXTRA = "right", "wrong", "missing", "extra"
NOT_STATED = "(not stated)"  # the reference side of an extra field
LEFT_OUT = "(missing)"  # the answer side of a missing field
OTHER_KEYS = "(other keys)"  # the per-field row of every key that no reference has
WORST_FIELDS = 3  # fields whose confusions the report lists
CONFUSIONS_SHOWN = 8  # error pairs listed per field


def parse(text: str) -> tuple[Any, bool]:
    """The answer as JSON and whether it is valid JSON (strictly: no code fences, no trailing prose)."""
    try:
        return json.loads(text.strip()), True
    except json.JSONDecodeError:
        return None, False


def are_objects(references: list[str]) -> bool:
    """Whether every reference is a JSON object: an extraction, graded by this grader by default."""
    return bool(references) and all(isinstance(parse(r)[0], dict) for r in references)


def flatten(value: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1]}`` -> ``{"a.b": 1, "c": [1]}``; an empty nested object is a value."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            out.update(flatten(item, f"{path}."))
        else:
            out[path] = item
    return out


def _canonical(value: Any) -> Any:
    """A form in which equal JSON values are equal Python values, and ``true`` is not ``1``."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if isinstance(value, list):
        return ("list", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, _canonical(v)) for k, v in value.items())))
    return (type(value).__name__, value)


def same(a: Any, b: Any) -> bool:
    return _canonical(a) == _canonical(b)


def shown(value: Any) -> str:
    """A value as the report shows it: JSON, unquoted when it is a string."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass
class Graded:
    """One answer against its reference: validity, exact match, and each field's outcome with the
    values on both sides (for the confusions)."""

    valid: bool
    is_object: bool  # the answer is an object (only asked when the reference is one)
    exact: bool
    fields: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # path -> (outcome, reference, answer)

    def count(self, outcome: str) -> int:
        return sum(o == outcome for o, _, _ in self.fields.values())


def grade_one(answer: str, reference: str) -> Graded | None:
    """The field-by-field verdict, or None when the reference is not a JSON object (then only
    validity, or equality with a non-object reference, is graded)."""
    expected, reference_is_json = parse(reference)
    if not reference_is_json or not isinstance(expected, dict):
        return None
    got, valid = parse(answer)
    is_object = isinstance(got, dict)
    want = flatten(expected)
    have = flatten(got) if is_object else {}
    fields = {}
    for path, value in want.items():
        if path not in have:
            fields[path] = (MISSING, shown(value), LEFT_OUT)
        else:
            fields[path] = (RIGHT if same(have[path], value) else WRONG, shown(value), shown(have[path]))
    for path, value in have.items():
        if path not in want:
            fields[path] = (EXTRA, NOT_STATED, shown(value))
    exact = is_object and all(o == RIGHT for o, _, _ in fields.values())
    return Graded(valid, is_object, exact, fields)


def _prf(right: int, wrong: int, missing: int, extra: int) -> dict[str, float]:
    tp, fp, fn = right, wrong + extra, wrong + missing
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


class JsonFields(Grader):
    name = "json"
    description = ("the answer's JSON object equals the reference; adds valid-JSON rate, field precision / "
                   "recall / F1 overall and per field, and the worst fields' confusions")

    def score(self, answer: str, reference: str) -> float:
        graded = grade_one(answer, reference)
        if graded is not None:
            return float(graded.exact)
        got, valid = parse(answer)
        expected, reference_is_json = parse(reference)
        if not valid:
            return 0.0
        return 1.0 if not reference_is_json else float(same(got, expected))  # not JSON: validity only

    def summary(self, answers: list[str], references: list[str], scores: list[float]) -> dict:
        seed = self.context.seed
        valid = [float(parse(a)[1]) for a in answers]
        out: dict[str, Any] = {"valid_json": _share(valid, seed), "exact_match": _share(scores, seed)}
        graded = [g for g in (grade_one(a, r) for a, r in zip(answers, references, strict=True)) if g is not None]
        if not graded:
            return out
        out["not_object"] = sum(g.valid and not g.is_object for g in graded)
        reference_keys = dict.fromkeys(p for g in graded for p, (o, _, _) in g.fields.items() if o != EXTRA)

        def row_of(path: str) -> str:
            return path if path in reference_keys else OTHER_KEYS

        out["fields"] = _pooled(graded, lambda path: True, seed)
        rows = list(reference_keys) + ([OTHER_KEYS] if any(row_of(p) == OTHER_KEYS for g in graded
                                                            for p in g.fields) else [])
        per_field = {}
        for row in rows:
            counts = Counter(o for g in graded for p, (o, _, _) in g.fields.items() if row_of(p) == row)
            pooled = _pooled(graded, lambda path, row=row: row_of(path) == row, seed)
            per_field[row] = {**{k: v["value"] for k, v in pooled.items()}, "f1_ci95": pooled["f1"]["ci95"],
                              "support": counts[RIGHT] + counts[WRONG] + counts[MISSING],
                              **{o: counts[o] for o in (RIGHT, WRONG, MISSING, EXTRA)}}
        out["per_field"] = per_field
        out["confusions"] = _confusions(graded, per_field, row_of)
        return out


def _share(values: list[float], seed: int) -> dict:
    return {"value": sum(values) / len(values) if values else 0.0,
            "ci95": bootstrap_ratio_ci(values, [1.0] * len(values), seed=seed)}


def _pooled(graded: list[Graded], keep, seed: int) -> dict[str, dict]:
    """Precision, recall and F1 over the kept fields of every example, each with its interval."""
    per_example = [Counter(o for p, (o, _, _) in g.fields.items() if keep(p)) for g in graded]
    tp = [c[RIGHT] for c in per_example]
    fp = [c[WRONG] + c[EXTRA] for c in per_example]
    fn = [c[WRONG] + c[MISSING] for c in per_example]
    totals = _prf(sum(tp), sum(c[WRONG] for c in per_example), sum(c[MISSING] for c in per_example),
                  sum(c[EXTRA] for c in per_example))
    found = [t + f for t, f in zip(tp, fp, strict=True)]  # the answer's fields
    stated = [t + f for t, f in zip(tp, fn, strict=True)]  # the reference's fields
    return {
        "precision": {"value": totals["precision"], "ci95": bootstrap_ratio_ci(tp, found, seed=seed)},
        "recall": {"value": totals["recall"], "ci95": bootstrap_ratio_ci(tp, stated, seed=seed)},
        "f1": {"value": totals["f1"], "ci95": bootstrap_ratio_ci([2 * t for t in tp],
                                                                 [f + s for f, s in zip(found, stated, strict=True)],
                                                                 seed=seed)},
    }


def _confusions(graded: list[Graded], per_field: dict[str, dict], row_of) -> dict[str, list[dict]]:
    """For the fields with the lowest F1 (and any error), their commonest (reference, answer) errors."""
    erring = [f for f, figures in per_field.items() if figures[WRONG] + figures[MISSING] + figures[EXTRA]]
    worst = sorted(erring, key=lambda f: per_field[f]["f1"])[:WORST_FIELDS]
    out = {}
    for row in worst:
        pairs = Counter((reference, answer if row != OTHER_KEYS else f"{p}: {answer}")
                        for g in graded for p, (o, reference, answer) in g.fields.items()
                        if row_of(p) == row and o != RIGHT)
        out[row] = [{"reference": r, "answer": a, "count": n} for (r, a), n in pairs.most_common(CONFUSIONS_SHOWN)]
    return out
