"""Plain helpers and sample data shared by test modules (fixtures live in conftest.py files; test
modules import from here, never from each other or from a conftest)."""

from __future__ import annotations

import json
from pathlib import Path

TINY_CONTEXT = 256  # the tiny model's context: small, so length warnings are easy to provoke

# one valid chat example, and enough of them that only the line under test can fail a check
SYSTEM = {"role": "system", "content": "Classify the message."}
USER = {"role": "user", "content": "I lost my card"}
ANSWER = {"role": "assistant", "content": "lost_or_stolen_card"}
GOOD = {"messages": [SYSTEM, USER, ANSWER]}
FILLER = [GOOD] * 10


def write_jsonl(path: Path, rows: list) -> Path:
    """Write rows (dicts, or raw strings taken as they are) one per line."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
