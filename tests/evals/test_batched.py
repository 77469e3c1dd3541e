"""How an ended batch's lines become Replies when the batch did not complete: the endpoint runs in
tests/api/test_ask_all_batched.py; a failed or expired batch can't be made to happen there, so its
Batch object (the SDK's own type) and lines in the hosted format are given here."""

from __future__ import annotations

from openai.types import Batch

from selftune.evals.batched import replies_of

FAILED = {"id": "batch_1", "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": "file-1",
          "completion_window": "24h", "status": "failed", "created_at": 0,
          "request_counts": {"completed": 0, "failed": 0, "total": 0},
          "errors": {"object": "list", "data": [{"code": "invalid_json_line", "line": 3, "message": "Line 3: bad."},
                                                {"code": "invalid_json_line", "line": 4, "message": "Line 4: bad."}]}}


def test_a_failed_batch_fails_every_request_naming_its_first_error():
    replies = replies_of(Batch.model_validate(FAILED), [], 2)
    assert [r.error for r in replies] == [
        "BatchError: batch batch_1 failed: invalid_json_line: Line 3: bad. (line 3), and 1 more"] * 2
    assert all(r.latency_s is None and r.text == "" for r in replies)


def test_an_expired_batch_keeps_its_answers_and_says_why_the_rest_are_missing():
    expired = Batch.model_validate({**FAILED, "status": "expired", "errors": None})
    answer = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
    lines = [{"id": "r2", "custom_id": "2", "response": {"status_code": 200, "request_id": "q", "body": answer},
              "error": None},
             {"id": "r0", "custom_id": "0", "response": None,
              "error": {"code": "batch_expired", "message": "Not run before the window ended."}},
             {"id": "r9", "custom_id": None, "response": None, "error": {"code": "invalid_json_line", "message": "x"}}]
    replies = replies_of(expired, lines, 4)
    assert replies[2].text == "hi" and (replies[2].prompt_tokens, replies[2].completion_tokens) == (5, 1)
    assert replies[0].error == "BatchError: batch_expired: Not run before the window ended."
    assert replies[1].error == replies[3].error == "BatchError: batch batch_1 expired before this request ran"
