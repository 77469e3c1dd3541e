"""Which answers become training examples: the one filter for a teacher's answers and for stored
completions, and the one way duplicates are dropped."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TypeVar

from pydantic import BaseModel

# answers that decline the task teach the student to decline: dropped (the hosted API marks some
# with message.refusal; the rest are recognised by how they open)
REFUSAL = re.compile(r"^\s*(I'm sorry|I am sorry|I apologi[sz]e|I cannot|I can't|I can not|I won't|I am unable|"
                     r"I'm unable|As an AI)\b", re.IGNORECASE)

T = TypeVar("T")


class Answer(BaseModel):
    """An answer as the teacher (or a stored completion) gave it: what the filter looks at, and the
    tokens it cost. Teacher answers are cached in this shape."""

    answer: str = ""
    refusal: str | None = None
    finish_reason: str | None = None
    tool_calls: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


def rejection(answer: Answer, keep_truncated: bool) -> str | None:
    """Why ``answer`` can't be a training target (the reason counted in the summary), or None."""
    text = answer.answer.strip()
    if answer.refusal or REFUSAL.match(text):
        return "refused"
    if answer.tool_calls:
        return "tool_calls"  # kept out: a call without its result teaches half a turn
    if not text:
        return "empty"
    if answer.finish_reason == "length" and not keep_truncated:
        return "truncated"
    return None


def drop_duplicates(items: Iterable[T], drops: Counter, reason: str,
                    key: Callable[[T], object] = lambda item: item) -> list[T]:
    """``items`` in order, each only the first time its key (as canonical JSON) is seen; every later
    one is counted in ``drops[reason]``."""
    unique, seen = [], set()
    for item in items:
        fingerprint = json.dumps(key(item), sort_keys=True)
        if fingerprint in seen:
            drops[reason] += 1
            continue
        seen.add(fingerprint)
        unique.append(item)
    return unique
