"""Starting a real ``selftune serve`` for a bench: one way, so every bench measures the same server.

Imported by the bench scripts beside it (``python bench/x.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import openai


def start_server(home: Path, port: int, env: dict[str, str], api_key: str, *extra: str,
                 wait_s: float = 120) -> subprocess.Popen:
    """``selftune serve --port PORT *extra`` with ``env``, its log in ``home/server.log``; returns once it
    answers ``GET /v1/models`` with ``api_key`` (or raises, naming the log)."""
    log = home / "server.log"
    process = subprocess.Popen([sys.executable, "-m", "selftune.cli", "serve", "--port", str(port), *extra],
                               env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=api_key, max_retries=0)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: see {log}")
        try:
            client.models.list()
            return process
        except openai.APIConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not start: see {log}")
