"""Faults in the middle of a streamed answer: the status line is already sent, so the error travels as
one event in the hosted shape (the openai SDK raises its APIError on it), then ``data: [DONE]``; the
connection ends cleanly and the server goes on answering."""

from __future__ import annotations

import openai
import pytest

from selftune.serve.embedded import EmbeddedEngine

HELLO = [{"role": "user", "content": "Where is my new card?"}]


def fail_after(monkeypatch, tokens: int, error: Exception) -> None:
    """The engine's step raises once a sequence has produced ``tokens`` tokens: a fault in the middle of
    an answer (a CUDA error, an out-of-memory), which fails the batch's requests, not the engine."""
    advance = EmbeddedEngine._advance

    def failing(self, sequence, logits):
        if sequence.generated >= tokens:
            raise error
        advance(self, sequence, logits)

    monkeypatch.setattr(EmbeddedEngine, "_advance", failing)


def read(stream) -> tuple[list[str], Exception | None]:
    texts = []
    try:
        for chunk in stream:
            texts += [c.delta.content or "" for c in chunk.choices]
    except openai.APIError as exc:
        return texts, exc
    return texts, None


def test_an_engine_error_mid_answer_is_an_error_event_then_done(client, monkeypatch, caplog):
    advance = EmbeddedEngine._advance
    fail_after(monkeypatch, 3, RuntimeError("CUDA error: an illegal memory access was encountered"))
    with client.chat.completions.with_streaming_response.create(
            model="tiny", messages=HELLO, max_tokens=50, temperature=1.0, seed=1, stream=True) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and '"error"' in lines[-2]
    assert sum('"content"' in line for line in lines[:-2]) >= 3  # the role chunk and the tokens before the fault

    texts, error = read(client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=50,
                                                       temperature=1.0, seed=1, stream=True))
    assert isinstance(error, openai.APIError) and not isinstance(error, openai.APIConnectionError)
    assert error.message == "Generation failed: RuntimeError: CUDA error: an illegal memory access was encountered"
    assert error.body["type"] == "server_error" and error.body["code"] == "generation_failed"
    assert "".join(texts)  # what came before the fault was delivered
    assert "ended with an error: Generation failed" in caplog.text

    monkeypatch.setattr(EmbeddedEngine, "_advance", advance)  # the engine goes on: the next answer is whole
    answer = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=5, temperature=0)
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert "".join(read(client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=5, temperature=0,
                                                       stream=True))[0]) == answer.choices[0].message.content


def test_a_fault_in_the_service_mid_stream_is_an_error_event_too(client, monkeypatch):
    import selftune.api.chat.service as service

    def broken(tokenizer, choice):
        raise ValueError("a bug while reading logprobs")

    monkeypatch.setattr(service, "_token_logprob", broken)
    texts, error = read(client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=5, logprobs=True,
                                                       stream=True))
    assert isinstance(error, openai.APIError)
    assert error.message == "Generation failed: ValueError: a bug while reading logprobs"
    assert client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=3).choices


def test_an_error_before_the_first_token(client, monkeypatch):
    """Before any byte is sent a whole answer is a 500 in the error shape; a stream still gets the event."""
    fail_after(monkeypatch, 0, RuntimeError("out of memory"))
    with pytest.raises(openai.InternalServerError, match="Generation failed: RuntimeError: out of memory"):
        client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=5)
    _, error = read(client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=5, stream=True))
    assert error.message == "Generation failed: RuntimeError: out of memory"
