"""A teacher that misbehaves on purpose: a real uvicorn server whose answers depend on the prompt.

- ``fail-twice``: 500 on the first two attempts, then an answer;
- ``rate-limit``: 429 (``Retry-After: 0``) on the first attempt, then an answer;
- ``refuse``: a refusal; ``empty``: an empty answer; ``long``: cut by max_tokens;
- anything else: ``answer to <prompt>``.

It counts every attempt and every answer given (what the user pays for), and the most requests in
flight at once. ``delay`` slows each answer, for the concurrency and kill tests.
"""

from __future__ import annotations

import threading
from collections import Counter

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.helpers import ThreadedServer


class FlakyTeacher(ThreadedServer):
    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.attempts: Counter = Counter()
        self.answered: Counter = Counter()
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        app = FastAPI()
        app.post("/v1/chat/completions")(self._complete)
        super().__init__(app)

    async def _complete(self, request: Request):
        import asyncio

        body = await request.json()
        prompt = body["messages"][-1]["content"]
        with self._lock:
            self.attempts[prompt] += 1
            attempt = self.attempts[prompt]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if "fail-twice" in prompt and attempt <= 2:
                return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, status_code=500)
            if "rate-limit" in prompt and attempt == 1:
                return JSONResponse({"error": {"message": "slow down", "type": "rate_limit_error"}}, status_code=429,
                                    headers={"Retry-After": "0"})
            answer, finish = f"answer to {prompt}", "stop"
            if "refuse" in prompt:
                answer = "I'm sorry, but I can't help with that."
            elif "empty" in prompt:
                answer = ""
            elif "long" in prompt:
                finish = "length"
            with self._lock:
                self.answered[prompt] += 1
            return {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                 "finish_reason": finish}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
        finally:
            with self._lock:
                self.in_flight -= 1
