"""Serving fixtures: ``generate`` submits requests to an engine and waits for every answer."""

from __future__ import annotations

import threading

import pytest

from selftune.serve.engine import Finished, GenerationRequest, Token


def _generate(engine, requests: list[GenerationRequest], timeout: float = 120) -> list[tuple[list[int], Finished]]:
    """Submit all at once (so they share batches) and wait for every answer."""
    results = [([], None) for _ in requests]
    done = [threading.Event() for _ in requests]

    def emit_for(i):
        def emit(event):
            if isinstance(event, Token) and event.choice is not None:
                results[i][0].append(event.choice.token)
            elif isinstance(event, Finished):
                results[i] = (results[i][0], event)
                done[i].set()
        return emit

    for i, request in enumerate(requests):
        engine.submit(request, emit_for(i))
    for event in done:
        assert event.wait(timeout)
    return results


@pytest.fixture(scope="session")
def generate():
    return _generate
