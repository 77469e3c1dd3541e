"""Streaming over a real socket (uvicorn's chunked SSE), through the SDK and through ``selftune chat``.

The rules of each chunk are tested in-process (tests/api/test_chat.py); here the point is the socket.
"""

from __future__ import annotations

import os
import subprocess
import sys

HELLO = [{"role": "user", "content": "Where is my new card?"}]


def test_streaming_over_a_socket_equals_the_whole_answer(shared_server):
    client = shared_server.client()
    kwargs = dict(model="tiny", messages=HELLO, max_tokens=8, temperature=0)
    whole = client.chat.completions.create(**kwargs)
    with client.chat.completions.with_streaming_response.create(**kwargs, stream=True) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and len(lines) >= 3  # the role, tokens, the finish, then [DONE]
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()


def test_selftune_chat_streams_answers(shared_server):
    result = subprocess.run([sys.executable, "-m", "selftune.cli", "chat", "tiny", "--base-url", shared_server.url,
                             "--temperature", "0", "--max-tokens", "4"], input="Hello\nAnd again\n",
                            capture_output=True, text=True, timeout=120, env={**os.environ, "OPENAI_API_KEY": "k"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") >= 2  # one streamed answer per line typed
    missing = subprocess.run([sys.executable, "-m", "selftune.cli", "chat", "nope", "--base-url", shared_server.url],
                             input="Hello\n", capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "404: No such model: 'nope'" in missing.stderr
