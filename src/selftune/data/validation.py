"""One decoded line -> a typed example, or the list of everything wrong with it.

pydantic checks the shape and reports all its findings at once; this module turns them into
selftune's stable codes and field paths (``messages[2].content``), then applies the
cross-message rules.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from selftune.data.formats import ROLES, ChatExample, Example, PreferenceExample
from selftune.data.problems import Problem, Purpose, json_type
from selftune.data.rules import chat_advice, chat_rules, preference_rules

_MODELS = {"sft": ChatExample, "dpo": PreferenceExample}
_RULES = {"sft": chat_rules, "dpo": preference_rules}
_ADVICE = {"sft": chat_advice, "dpo": lambda example: []}
_ADAPTERS = {purpose: TypeAdapter(model) for purpose, model in _MODELS.items()}
# Lists whose items pydantic tags with their role (a discriminated union); the tag is not a field.
_ROLE_TAGGED = {"messages"}
_CONTENT_TAGS = {"text", "parts"}
_PURPOSE_NAMES = {"sft": "chat (supervised)", "dpo": "preference (DPO)"}


def detect_purpose(value: Any) -> Purpose | None:
    """Which format a decoded line is written in, judged by its top-level keys."""
    if not isinstance(value, dict):
        return None
    if "messages" in value:
        return "sft"
    if {"input", "preferred_output", "non_preferred_output"} & value.keys():
        return "dpo"
    return None


def validate_line(value: Any, purpose: Purpose, line: int,
                  ignore: frozenset[str] = frozenset()) -> tuple[Example | None, list[Problem]]:
    """The example and its warnings, or None and its errors; rules whose code is in ``ignore`` are not
    applied (a file of prompts has nothing to train on, by design)."""
    if not isinstance(value, dict):
        return None, [Problem(code="not_an_object", line=line,
                              message=f"each line must be a JSON object, got {json_type(value)}")]
    found = detect_purpose(value)
    if found is not None and found != purpose:
        return None, [Problem(code="wrong_format", line=line,
                              message=f"this line is a {_PURPOSE_NAMES[found]} example, but the file "
                                      f"is {_PURPOSE_NAMES[purpose]}; don't mix formats in one file")]
    try:
        example = _ADAPTERS[purpose].validate_python(value)
    except ValidationError as exc:
        return None, [_translate(error, line) for error in exc.errors(include_url=False)]
    problems = [Problem(code=code, line=line, field=field, message=message)
                for code, field, message in _RULES[purpose](example) if code not in ignore]
    if problems:
        return None, problems
    return example, [Problem(severity="warning", code=code, line=line, field=field, message=message)
                     for code, field, message in _ADVICE[purpose](example)]


def _translate(error: dict, line: int) -> Problem:
    """A pydantic error -> a Problem with selftune's code, path and wording."""
    loc, kind, given = error["loc"], error["type"], error.get("input")
    parts, role = _strip_tags(loc)
    path = _path(parts)
    leaf = parts[-1] if parts else None
    code, message = "invalid_value", error["msg"]

    if kind == "union_tag_invalid":
        code, path = "invalid_role", _join(path, "role")
        message = f"role {_short(given.get('role'))} is not one of {', '.join(ROLES)}"
    elif kind == "union_tag_not_found":
        code, path, message = "missing_field", _join(path, "role"), "message has no role"
    elif kind == "missing":
        code, message = "missing_field", f"required field {leaf!r} is missing"
    elif kind == "extra_forbidden":
        if leaf == "weight":
            code, message = "weight_not_allowed", f"weight is only allowed on assistant messages, not on {role}"
        else:
            on_message = len(parts) >= 3 and isinstance(parts[-2], int) and parts[-3] in _ROLE_TAGGED
            owner = f"a {role} message" if role and on_message else "this object"
            code, message = "unexpected_field", f"field {leaf!r} is not allowed on {owner}"
    elif kind in _EXPECTED_TYPES:
        code, message = "wrong_type", f"expected {_EXPECTED_TYPES[kind]}, got {json_type(given)}"
    elif kind == "literal_error":
        message = f"must be {error['ctx']['expected']}, got {_short(given)}"
    elif kind == "string_pattern_mismatch":
        message = f"{_short(given)} is not a valid name: use 1-64 letters, digits, '_' or '-'"
    elif kind in ("too_short", "string_too_short") and leaf in ("preferred_output", "non_preferred_output"):
        code, message = "wrong_output_count", "must hold exactly one assistant message, got none"
    elif kind == "too_long" and leaf in ("preferred_output", "non_preferred_output"):
        code, message = "wrong_output_count", f"must hold exactly one assistant message, got {len(given)}"
    elif kind in ("too_short", "string_too_short"):
        code, message = "empty_value", "must not be empty"
    elif kind == "wrong_type":  # our own discriminator error for content
        code = "wrong_type"
        message = f"{error['msg']}, got {json_type(given)}"
    elif kind not in _PYDANTIC_TYPES:  # a PydanticCustomError raised by formats.py: its type is our code
        code = kind
    return Problem(code=code, line=line, field=path or None, message=message)


_EXPECTED_TYPES = {
    "string_type": "a string", "list_type": "a list", "bool_type": "true or false",
    "int_type": "an integer", "dict_type": "an object", "model_type": "an object",
    "model_attributes_type": "an object",
}
_PYDANTIC_TYPES = {"literal_error", "too_long", *_EXPECTED_TYPES}


def _strip_tags(loc: tuple) -> tuple[list, str | None]:
    """Drop the union tags pydantic puts into locations; return the path and the message role."""
    parts, role = [], None
    for i, item in enumerate(loc):
        prev, prev2 = (loc[i - 1] if i else None), (loc[i - 2] if i > 1 else None)
        if isinstance(prev, int) and prev2 in _ROLE_TAGGED and item in ROLES:
            role = item
            continue
        if prev == "content" and item in _CONTENT_TAGS:
            continue
        parts.append(item)
    return parts, role


def _path(parts: list) -> str:
    out = ""
    for item in parts:
        out = f"{out}[{item}]" if isinstance(item, int) else _join(out, item)
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _short(value: Any, limit: int = 40) -> str:
    """A value as the user wrote it: 'text' for strings, JSON for the rest (null, ["a"])."""
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."
