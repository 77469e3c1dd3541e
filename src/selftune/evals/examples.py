"""Held-out examples: each chat example is a prompt (its messages but the last) and a reference (the
final assistant message), read with stage 1's checker so a bad line is reported with its number."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from selftune.data.check import iter_examples
from selftune.errors import SelftuneError
from selftune.models.content import text_of


@dataclass(frozen=True)
class EvalExample:
    line: int  # in the file, for the per-example results
    messages: list[dict]  # the conversation up to the answer
    reference: str  # the answer it should get
    tools: list[dict] | None = None

    @property
    def system(self) -> str | None:
        return next((text_of(m.get("content")) for m in self.messages if m["role"] in ("system", "developer")),
                    None)

    def without_system(self) -> list[dict]:
        return [m for m in self.messages if m["role"] not in ("system", "developer")]


def load_examples(path: str | Path, limit: int | None = None, seed: int = 0) -> list[EvalExample]:
    """The file's examples; with ``limit``, a seeded random sample of them (in file order), so a file
    sorted by class still gives every class its share."""
    examples = []
    for line, example in iter_examples(path, "sft"):
        ((messages, tools),) = example.conversations()
        if messages[-1]["role"] != "assistant" or messages[-1].get("tool_calls"):
            raise SelftuneError(f"{path}:{line}: messages: the last message must be an assistant's text answer "
                                "(the reference the model's answer is graded against)")
        examples.append(EvalExample(line, messages[:-1], text_of(messages[-1].get("content")), tools))
    if not examples:
        raise SelftuneError(f"{path}: no examples")
    if limit is not None and limit < len(examples):
        examples = sorted(random.Random(seed).sample(examples, limit), key=lambda e: e.line)
    return examples
