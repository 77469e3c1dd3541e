"""The dashboard in this process: FastAPI's TestClient drives the app ``selftune serve`` runs, without
its worker (jobs stay queued for validation, which is all these tests need), plus an ``openai``
client on the same app to make files and jobs as a user's script would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import openai
import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def dashboard(monkeypatch, service_env) -> Callable:
    """``with dashboard(**env) as (browser, connect):`` ``browser()`` is a new TestClient for the pages
    (its own cookies, redirects not followed), ``connect(key)`` an openai client of the same app."""

    @contextmanager
    def serve(**env: str) -> Iterator[tuple[Callable[[], TestClient], Callable[[str], openai.OpenAI]]]:
        from selftune.api.app import create_app
        from selftune.config import get_settings

        for name, value in {**service_env, **env}.items():
            monkeypatch.setenv(name, value)
        with TestClient(create_app(get_settings(), embedded_worker=False)) as http:  # runs the lifespan once
            # more clients of the running app (not entered: the lifespan is not run again), each a browser
            yield (lambda: TestClient(http.app, follow_redirects=False),
                   lambda api_key="local-key": openai.OpenAI(base_url="http://testserver/v1", api_key=api_key,
                                                             http_client=http, max_retries=0))

    return serve
