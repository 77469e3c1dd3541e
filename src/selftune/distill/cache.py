"""The resumable cache of teacher answers: one JSON line per answered request, appended and flushed
as each answer arrives, so an interrupted run continues where it stopped and never pays twice for a
prompt. A line cut short by a kill is ignored (and its prompt asked again)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from pydantic import ValidationError

from selftune.distill.answers import Answer


def request_key(teacher: str, messages: list[dict], tools: list[dict] | None, settings: dict, sample: int) -> str:
    """Identifies a request: same teacher, prompt, settings and sample number -> same answer reused."""
    text = json.dumps([teacher, messages, tools, settings, sample], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class AnswerCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.entries: dict[str, Answer] = {}
        self._lock = threading.Lock()
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self.entries[entry.pop("key")] = Answer.model_validate(entry)
                except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValidationError):
                    continue  # the tail of a killed run
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            self._file.write("\n")  # a cut line stays alone on its line

    def get(self, key: str) -> Answer | None:
        return self.entries.get(key)

    def put(self, key: str, answer: Answer) -> None:
        with self._lock:
            self._file.write(json.dumps({"key": key, **answer.model_dump()}, ensure_ascii=False) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            self.entries[key] = answer

    def close(self) -> None:
        self._file.close()
