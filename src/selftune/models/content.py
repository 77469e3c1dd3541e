"""A message's content as text, for every stage that reads messages (chat templates, data rules,
stored completions, evals, distill). It lives with the chat template, below the stages that use it."""

from __future__ import annotations

from typing import Any


def text_of(content: Any, separator: str = "") -> str:
    """A message's content as one string: a string as is, text parts (dicts or objects with ``.text``)
    joined, None as empty."""
    if content is None or isinstance(content, str):
        return content or ""
    return separator.join(part["text"] if isinstance(part, dict) else part.text for part in content)
