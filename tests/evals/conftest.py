"""A scripted OpenAI-compatible endpoint (a real uvicorn server): it knows a few models, answers each
prompt from a table (another table when the request asks for structured output), fails the prompts it is
told to, and records who asked for what with which key and ``response_format``."""

from __future__ import annotations

import threading

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.helpers import ThreadedServer


class ScriptedEndpoint(ThreadedServer):
    def __init__(self, models: set[str], answers: dict[str, str], failing: frozenset[str] = frozenset(),
                 constrained: dict[str, str] | None = None):
        self.models, self.answers, self.failing = models, answers, failing
        self.constrained = constrained or {}  # the answers given under a response_format
        self.asked: list[tuple[str, str, str]] = []  # (model, Authorization header, prompt)
        self.formats: list[tuple[str, dict | None, int]] = []  # (model, response_format, messages sent)
        self._lock = threading.Lock()
        app = FastAPI()
        app.get("/v1/models/{model}")(self._model)
        app.post("/v1/chat/completions")(self._complete)
        super().__init__(app)

    async def _model(self, model: str):
        if model not in self.models:
            return JSONResponse({"error": {"message": f"no model {model}", "type": "invalid_request_error"}},
                                status_code=404)
        return {"id": model, "object": "model", "created": 0, "owned_by": "test"}

    async def _complete(self, request: Request):
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        with self._lock:
            self.asked.append((body["model"], request.headers.get("authorization"), prompt))
            self.formats.append((body["model"], body.get("response_format"), len(body["messages"])))
        if prompt in self.failing:
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, status_code=500)
        table = self.constrained if body.get("response_format") else self.answers
        return {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": table.get(prompt, "")},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}


@pytest.fixture
def scripted_endpoint():
    """``scripted_endpoint(models, answers, failing)`` starts one; all are stopped after the test."""
    started = []

    def start(models: set[str], answers: dict[str, str], failing: frozenset[str] = frozenset(),
              constrained: dict[str, str] | None = None) -> ScriptedEndpoint:
        started.append(ScriptedEndpoint(models, answers, failing, constrained).start())
        return started[-1]

    yield start
    for endpoint in started:
        endpoint.stop()
