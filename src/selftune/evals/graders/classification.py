"""Classification: the answer is a label. Accuracy, macro-F1, per-class precision and recall, and
the confusion matrix."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from selftune.evals.graders.base import Grader
from selftune.evals.graders.exact import normalise

OTHER = "(other)"  # an answer that is none of the labels


class Confusion(BaseModel):
    """Counts of reference label (rows) against answered label (columns, plus OTHER when some answer
    was none of the labels)."""

    rows: list[str]
    columns: list[str]
    matrix: list[list[int]]


class Classification(Grader):
    name = "classification"
    description = "the answer is a label (compared normalised); adds macro-F1, per-class figures, confusion"

    def score_all(self, answers: list[str], references: list[str]) -> list[float]:
        return [float(normalise(a) == normalise(r)) for a, r in zip(answers, references, strict=True)]

    def summary(self, answers: list[str], references: list[str], scores: list[float]) -> dict:
        labels = sorted(set(self.context.labels or []) | set(references))
        by_form = {normalise(label): label for label in labels}
        predicted = [by_form.get(normalise(a), OTHER) for a in answers]  # the label each answer names
        pairs = Counter(zip(references, predicted, strict=True))
        per_class, f1s = {}, []
        for label in labels:
            tp = pairs[(label, label)]
            predicted_as = sum(n for (_, p), n in pairs.items() if p == label)
            support = sum(n for (r, _), n in pairs.items() if r == label)
            precision = tp / predicted_as if predicted_as else 0.0
            recall = tp / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
            if support:
                f1s.append(f1)
        columns = labels + ([OTHER] if OTHER in predicted else [])
        return {
            "accuracy": sum(scores) / len(scores) if scores else 0.0,
            "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
            "off_label_answers": predicted.count(OTHER),
            "per_class": per_class,
            "confusion": Confusion(rows=labels, columns=columns,
                                   matrix=[[pairs[(r, c)] for c in columns] for r in labels]),
        }
