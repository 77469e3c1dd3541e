"""A real ``selftune serve`` (uvicorn, SQLite, embedded worker) on a free 127.0.0.1 port.

Only for tests whose point is the process boundary: streaming over a real socket, ``kill -9`` and
Ctrl-C of the server, two workers on one queue, the CLI talking to (or starting) a server. Everything
else drives the same app in-process (tests/api/). Tests drive it only through the official ``openai``
SDK or the CLI, as a user would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest

from selftune.evals.local_server import free_port


@dataclass
class Server:
    home: Path
    env: dict
    args: list = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 60) -> Server:
        log = open(self.home / f"server-{self.port}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "selftune.cli", "serve", "--port", str(self.port), "--home", str(self.home),
             *self.args], env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group, so stop() can press Ctrl-C as a terminal does
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log()}")

    def client(self, api_key: str = "local-key") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=api_key, max_retries=0, timeout=30)

    def stop(self) -> None:
        """Ctrl-C in the server's terminal: SIGINT to its whole process group."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs, as in a crash or an OOM kill."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def log(self) -> str:
        return "\n".join((self.home / f"server-{self.port}.log").read_text(errors="replace").splitlines()[-40:])


@pytest.fixture(scope="session")
def new_server(tmp_path_factory, service_env):
    """``new_server(home=None, args=(), **env)``: a server (not started yet) with the test service's
    environment plus ``env``, in ``home`` or a fresh one; start and stop it in the test."""

    def new(home: Path | None = None, args: tuple = (), **env: str) -> Server:
        if home is None:
            home = tmp_path_factory.mktemp("server") / "home"
            home.mkdir()
        return Server(home, {**service_env, **env}, list(args))

    return new


@pytest.fixture(scope="session")
def shared_server(new_server):
    """One server shared by the tests that need no fresh state: they chat, store completions under
    metadata of their own, or train a job of their own. Sharing spares a start and an engine load each."""
    srv = new_server().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium through playwright, one browser for the session (each test opens its own
    context); skips where chromium is missing."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("needs Debian's chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()
