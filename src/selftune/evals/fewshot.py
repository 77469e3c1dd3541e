"""Few-shot prompts for a base model, built the way a careful user would build them.

The task's system prompt; for a classification, the list of allowed labels (from the training file,
never the test file); then K solved examples from the training file as earlier turns of the chat,
drawn with a seed and spread over as many classes as K allows (stratified).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass

from selftune.evals.examples import EvalExample

MAX_LABEL_CHARS = 64


def label_set(references: list[str]) -> list[str] | None:
    """The labels when the answers look like a classification (short one-line answers, each used
    at least twice on average), else None. JSON objects are an extraction, however often they repeat."""
    from selftune.evals.graders.json_fields import are_objects

    distinct = set(references)
    if are_objects(sorted(distinct)):
        return None
    if len(distinct) < 2 or len(references) < 2 * len(distinct):
        return None
    if any("\n" in label or len(label) > MAX_LABEL_CHARS or not label.strip() for label in distinct):
        return None
    return sorted(distinct)


@dataclass
class FewShot:
    system: str | None
    shots: list[EvalExample]
    labels: list[str] | None

    @classmethod
    def build(cls, train: list[EvalExample], k: int, seed: int = 0) -> FewShot:
        labels = label_set([e.reference for e in train])
        systems = Counter(e.system for e in train if e.system)
        system = systems.most_common(1)[0][0] if systems else None
        if labels:
            label_lines = "\n".join(labels)
            listing = f"Answer with exactly one of these {len(labels)} labels:\n{label_lines}"
            system = f"{system}\n\n{listing}" if system else listing
        return cls(system, _stratified(train, k, seed, bool(labels)), labels)

    def messages(self, example: EvalExample) -> list[dict]:
        """The prompt for one test example: instructions, the solved examples as earlier turns, then
        the example's own conversation (its system prompt replaced by the few-shot one)."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        for shot in self.shots:
            out += shot.without_system() + [{"role": "assistant", "content": shot.reference}]
        return out + example.without_system()


def _stratified(train: list[EvalExample], k: int, seed: int, by_class: bool) -> list[EvalExample]:
    """k examples: for a classification, one from each of k classes first (round robin over the
    classes in a seeded order); otherwise a seeded random sample."""
    rng = random.Random(seed)
    if not by_class:
        return rng.sample(train, min(k, len(train)))
    groups: dict[str, list[EvalExample]] = defaultdict(list)
    for example in train:
        groups[example.reference].append(example)
    order = sorted(groups)
    rng.shuffle(order)
    for label in order:
        rng.shuffle(groups[label])
    picked, round_ = [], 0
    while len(picked) < min(k, len(train)):
        for label in order:
            if round_ < len(groups[label]) and len(picked) < k:
                picked.append(groups[label][round_])
        round_ += 1
    rng.shuffle(picked)  # not grouped by class in the prompt
    return picked
