"""The app ``selftune serve`` runs, in this process: FastAPI's TestClient drives it, lifespan included,
so the embedded worker trains jobs (in child processes, as in the server) and the serving engine loads
the tiny model here. Tests still speak only through the official ``openai`` SDK, whose HTTP client is the
TestClient: the same requests, validation, status codes and error bodies, without a server process or a
socket. Tests whose point is a process boundary (a real socket, kill -9, Ctrl-C, the CLI) are in e2e/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import openai
import pytest
from fastapi.testclient import TestClient

from tests.helpers import TWO_KEYS


@pytest.fixture
def serve_in_process(monkeypatch, service_env) -> Callable:
    """``with serve_in_process(**env) as connect:`` runs the app with the test service's environment
    (plus ``env``); ``connect(api_key)`` is an openai client for it."""

    @contextmanager
    def serve(**env: str) -> Iterator[Callable[[str], openai.OpenAI]]:
        from selftune.api.app import create_app
        from selftune.config import get_settings

        for name, value in {**service_env, **env}.items():
            monkeypatch.setenv(name, value)  # services read settings afresh; the worker's children inherit them
        with TestClient(create_app(get_settings())) as http:
            yield lambda api_key="local-key": openai.OpenAI(base_url="http://testserver/v1", api_key=api_key,
                                                            http_client=http, max_retries=0)

    return serve


@pytest.fixture
def client(serve_in_process) -> Iterator[openai.OpenAI]:
    """An openai client of the app in local mode (no API keys)."""
    with serve_in_process() as connect:
        yield connect()


@pytest.fixture
def org_client(serve_in_process) -> Iterator[Callable[[str], openai.OpenAI]]:
    """``org_client(key)``: a client of the app with two keys for two organisations, key-a (org-a) and key-b (org-b)."""
    with serve_in_process(SELFTUNE_API_KEYS=TWO_KEYS) as connect:
        yield connect
