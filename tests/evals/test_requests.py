"""The one concurrent request runner: replies in order, failures kept as values, each reply handed
over as it arrives."""

from __future__ import annotations

import openai

from selftune.evals.requests import ChatRequest, ask_all


def test_replies_come_back_in_order_with_failures_as_values(scripted_endpoint):
    endpoint = scripted_endpoint({"m"}, {f"q{i}": f"a{i}" for i in range(6)}, failing=frozenset({"q3"}))
    client = openai.OpenAI(base_url=endpoint.url, api_key="k", max_retries=0)
    requests = [ChatRequest([{"role": "user", "content": f"q{i}"}], seed=i) for i in range(6)]
    seen, advanced = [], []
    replies = ask_all(client, "m", requests, {"max_tokens": 4}, concurrency=3, progress=advanced.append,
                      on_reply=lambda i, reply: seen.append(i))
    assert [r.text for r in replies] == ["a0", "a1", "a2", "", "a4", "a5"]
    assert [r.failed for r in replies] == [False, False, False, True, False, False]
    assert replies[3].error.startswith("InternalServerError: ") and replies[3].prompt_tokens == 0
    assert (replies[0].prompt_tokens, replies[0].completion_tokens, replies[0].finish_reason) == (7, 2, "stop")
    assert all(r.latency_s > 0 for r in replies)
    assert sorted(seen) == list(range(6)) and advanced == [1] * 6
