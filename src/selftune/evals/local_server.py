"""The default endpoint of ``selftune eval``: the local selftune server, started for the run if none
is listening."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai

from selftune.config import LOCAL_BASE_URL
from selftune.errors import SelftuneError


def _listening(url: str, api_key: str) -> bool:
    try:
        openai.OpenAI(base_url=url, api_key=api_key, max_retries=0, timeout=5).models.list()
        return True
    except openai.APIConnectionError:
        return False
    except openai.APIStatusError:
        return True  # something answers there (perhaps wanting another key): use it and report its errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while a started server runs, so it is stopped as on Ctrl-C:
    Python's default for SIGTERM ends the process at once, skipping every ``finally``, and left the
    server (and its training child) running. Signal handlers can only be set in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def local_server(log_file: Path, api_key: str = "local", timeout_s: float = 120,
                 reuse_default: bool = True) -> Iterator[str]:
    """The base URL of a selftune server: the one on the default port if it answers (unless not
    ``reuse_default``: a benchmark serving models of its own), else a new ``selftune serve`` on a free
    port (its output in ``log_file``), stopped on exit, on Ctrl-C and on SIGTERM."""
    if reuse_default and _listening(LOCAL_BASE_URL, api_key):
        yield LOCAL_BASE_URL
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with _sigterm_as_interrupt():
        with open(log_file, "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "selftune.cli", "serve", "--port", str(port)],
                                       stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
                                       start_new_session=True)  # Ctrl-C reaches us; we stop it in order
        try:
            deadline = time.monotonic() + timeout_s
            while not _listening(url, api_key):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SelftuneError(f"the local selftune server did not start; see {log_file}")
                time.sleep(0.3)
            yield url
        finally:
            process.terminate()  # the server stops its jobs at a checkpoint and puts them back in the queue
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
