"""Plain helpers and sample data shared by test modules (fixtures live in conftest.py files; test
modules import from here, never from each other or from a conftest)."""

from __future__ import annotations

import json
import threading
import time
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


class ThreadedServer:
    """A real uvicorn server for ``app`` on a free 127.0.0.1 port, in a thread of this process: the
    stand-in endpoints (a scripted model, a misbehaving teacher) subclass it and build their app."""

    def __init__(self, app) -> None:
        import uvicorn

        from selftune.evals.local_server import free_port

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def watched(context, confirm: str | None = None):
    """A new page and the list of what went wrong on it; a confirm dialog starting with ``confirm`` is
    accepted (the cancel button asks), any other dialog is a problem (an injected ``alert``)."""
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def dialog(d):
        if confirm and d.type == "confirm" and d.message.startswith(confirm):
            d.accept()
        else:
            problems.append(f"dialog {d.type}: {d.message}")
            d.dismiss()

    page.on("dialog", dialog)
    return page, problems
