"""A real ``selftune serve`` (uvicorn, SQLite, embedded worker) on a free 127.0.0.1 port, per test.

Tests drive it only through the official ``openai`` SDK, as a user's script would.
"""

from __future__ import annotations

import os
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
from tests.conftest import write_jsonl

TERMINAL = ("succeeded", "failed", "cancelled")



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


@pytest.fixture
def server_env(tiny_model) -> dict:
    return {"SELFTUNE_BASE_MODELS": f"tiny={tiny_model}", "SELFTUNE_JOB_LEASE_SECONDS": "3",
            "SELFTUNE_METRICS_EVERY": "1", "HF_HUB_OFFLINE": "1", "SELFTUNE_API_KEYS": ""}


@pytest.fixture
def server(tmp_path, server_env):
    """A started server in local mode (no API keys), stopped after the test."""
    srv = Server(tmp_path / "home", server_env)
    srv.home.mkdir()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def keyed_server(tmp_path, server_env):
    """A started server with two keys for two organisations: key-a (org-a) and key-b (org-b)."""
    server = Server(tmp_path / "home", {**server_env, "SELFTUNE_API_KEYS": "key-a:org-a,key-b:org-b"})
    server.home.mkdir()
    yield server.start()
    server.stop()


@pytest.fixture
def client(server) -> openai.OpenAI:
    return server.client()


def chat_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` small, valid chat examples (a toy intent task), different for each seed."""
    intents = ["card_arrival", "lost_card", "top_up", "refund", "exchange_rate"]
    return [{"messages": [{"role": "system", "content": "Classify the banking question."},
                          {"role": "user", "content": f"question {seed}-{i}: about {intents[i % 5]} please"},
                          {"role": "assistant", "content": intents[i % 5]}]} for i in range(n)]


def preference_rows(n: int) -> list[dict]:
    return [{"input": {"messages": [{"role": "user", "content": f"Say yes {i}"}]},
             "preferred_output": [{"role": "assistant", "content": "yes"}],
             "non_preferred_output": [{"role": "assistant", "content": "no"}]} for i in range(n)]


def upload(client: openai.OpenAI, path: Path, rows: list | None = None, wait: bool = True):
    if rows is not None:
        write_jsonl(path, rows)
    with open(path, "rb") as f:
        created = client.files.create(file=f, purpose="fine-tune")
    return client.files.wait_for_processing(created.id, poll_interval=0.1, max_wait_seconds=60) if wait else created


def wait_for(client: openai.OpenAI, job_id: str, statuses=TERMINAL, timeout: float = 180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout}s")


def all_events(client: openai.OpenAI, job_id: str) -> list:
    """Every event, oldest first (the API lists newest first)."""
    return list(reversed(list(client.fine_tuning.jobs.list_events(job_id, limit=100))))
