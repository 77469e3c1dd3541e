"""How much of the restaurants task the text decides: the ceiling under issue 19's exact-match target.

E2E's price and rating attributes come on two scales: words ("cheap", "high") and numbers ("less than
£20", "5 out of 5"). Crowd workers often wrote a numeric value in words ("It has cheap prices" for
"less than £20", "a high price range" for "more than £30"), so the same words carry either scale's
value. A row whose reference has a numeric-scale value while its text states no number at all can only
be guessed; this counts those rows per split, shows that the word scale is the better guess for such
texts (so a perfect reader still misses them), and, given an evaluation's ``results.jsonl``, splits a
model's exact matches between the rows the text decides and the rest.

    .venv/bin/python bench/restaurants_ambiguity.py
    .venv/bin/python bench/restaurants_ambiguity.py --results OUT/eval-30m/results.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from restaurants_curve import DATA

from selftune.evals.graders.json_fields import JsonFields
from selftune.evals.results import ExampleResult, run_name

SCALED = {  # field -> its numeric-scale values; the rest of its values are words
    "priceRange": {"less than £20", "£20-25", "more than £30"},
    "customerRating": {"1 out of 5", "3 out of 5", "5 out of 5"},
}
NUMBER = re.compile(r"\d|£|pound|\bone\b|\bthree\b|\bfive\b|star", re.IGNORECASE)  # any way of writing one


def rows(path: Path) -> list[tuple[str, dict]]:
    """(description, reference object) of each line of a restaurants chat file."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        out.append((next(m["content"] for m in messages if m["role"] == "user"), json.loads(messages[-1]["content"])))
    return out


def undecided_fields(text: str, reference: dict) -> list[str]:
    """Fields whose reference value is on the numeric scale while the text states no number."""
    if NUMBER.search(text):
        return []
    return [field for field, numeric in SCALED.items() if reference.get(field) in numeric]


def scales_without_numbers(data: list[tuple[str, dict]]) -> dict[str, Counter]:
    """For texts stating no number: how often each field's reference is on the word or the numeric scale."""
    counts: dict[str, Counter] = {field: Counter() for field in SCALED}
    for text, reference in data:
        if NUMBER.search(text):
            continue
        for field, numeric in SCALED.items():
            if field in reference:
                counts[field]["numeric" if reference[field] in numeric else "words"] += 1
    return counts


def split_exact(results: Path, data: list[tuple[str, dict]]) -> None:
    """A model's exact matches on the rows the text decides and on the others (results.jsonl's ``line``)."""
    by_model: dict[str, dict[bool, list[float]]] = {}
    for line in results.read_text(encoding="utf-8").splitlines():
        result = ExampleResult.model_validate_json(line)
        text, reference = data[result.line - 1]
        if JsonFields.name not in result.scores:
            raise SystemExit(f"{results}: not graded by the JSON grader (scores: {sorted(result.scores)})")
        exact = result.scores[JsonFields.name]  # the JSON grader's per-example score is its exact-object match
        decided = not undecided_fields(text, reference)
        name = run_name(result.model, result.constrained)
        by_model.setdefault(name, {True: [], False: []})[decided].append(exact)
    for model, groups in by_model.items():
        for decided, scores in groups.items():
            if scores:
                print(f"{model:<40} {'text decides' if decided else 'undecided':<13} {len(scores):>5} rows  "
                      f"exact {sum(scores) / len(scores):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the restaurants folder")
    parser.add_argument("--results", type=Path, help="an evaluation's results.jsonl on --split")
    parser.add_argument("--split", default="test.jsonl", help="the file --results scored")
    args = parser.parse_args()
    loaded = {name: rows(args.data / name) for name in ("train.jsonl", "test.jsonl")}
    for name, data in loaded.items():
        undecided = [undecided_fields(text, reference) for text, reference in data]
        per_field = Counter(field for fields in undecided for field in fields)
        share = sum(bool(fields) for fields in undecided) / len(data)
        print(f"{name}: {len(data)} rows; a numeric-scale value with no number in the text: "
              f"{', '.join(f'{f} {n}' for f, n in per_field.items())}; rows {share:.1%} "
              f"(exact-match ceiling of a perfect reader about {1 - share:.1%})")
        for field, counts in scales_without_numbers(data).items():
            total = sum(counts.values())
            print(f"  texts with no number that state {field}: {total}, reference on the word scale "
                  f"{counts['words'] / total:.1%}, numeric {counts['numeric'] / total:.1%}")
    if args.results:
        split_exact(args.results, loaded.get(args.split) or rows(args.data / args.split))


if __name__ == "__main__":
    main()
