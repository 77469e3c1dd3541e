"""The JSON schema of a structured-output evaluation, read once and sent as ``response_format``.

The request shape is the hosted API's (``{"type": "json_schema", "json_schema": {"name", "schema",
"strict"}}``); its name comes from the file's name, made to fit the API's rule for names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from selftune.errors import SelftuneError

NAME_RULE = re.compile(r"[^a-zA-Z0-9_-]")  # the hosted API's names: 1-64 letters, digits, '_' or '-'


def load_schema(path: str | Path) -> dict:
    """The schema as a JSON object; a clear error naming the file otherwise."""
    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SelftuneError(f"{path}: can't read the schema file ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SelftuneError(f"{path}: the schema file is not valid JSON ({exc})") from None
    if not isinstance(schema, dict):
        raise SelftuneError(f"{path}: a JSON schema must be a JSON object, not {type(schema).__name__}")
    return schema


def response_format(path: str | Path) -> dict:
    """``response_format`` asking for answers that match the schema in ``path``."""
    name = NAME_RULE.sub("_", Path(path).stem)[:64] or "answer"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": load_schema(path), "strict": True}}
