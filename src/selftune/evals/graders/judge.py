"""Model-graded: a judge model reads the question, the reference and the answer, and scores the
answer 1-5 against a rubric (``--grader judge:MODEL``; the judge is reached through the same
OpenAI-compatible endpoint as the models, or ``--judge-base-url``)."""

from __future__ import annotations

import json
import re

from selftune.evals.batched import send_all
from selftune.evals.graders.base import Grader
from selftune.evals.requests import ChatRequest, Reply

JUDGE_ERROR = "judge error: "

RUBRIC = """You grade an AI assistant's answer against a reference answer.
Score 5: says the same as the reference (wording may differ). 4: right, with minor omissions.
3: partly right. 2: mostly wrong. 1: wrong, empty or off-topic.
Reply with JSON: {"score": <1-5>, "reason": "<one sentence>"}"""
SCHEMA = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                                           "reason": {"type": "string"}},
          "required": ["score", "reason"], "additionalProperties": False}


class ModelJudge(Grader):
    name = "judge"
    needs_argument = True
    description = "a judge model scores each answer 1-5 against the reference (mapped to 0-1)"

    def score_all(self, answers: list[str], references: list[str]) -> list[float]:
        requests = [ChatRequest([{"role": "system", "content": RUBRIC},
                                 {"role": "user", "content": f"Reference answer:\n{reference}\n\n"
                                                             f"Answer to grade:\n{answer}"}])
                    for answer, reference in zip(answers, references, strict=True)]
        settings = {"temperature": 0, "max_tokens": 100,
                    "response_format": {"type": "json_schema", "json_schema": {"name": "grade", "schema": SCHEMA}}}
        replies = send_all(self.context.judge, self.argument, requests, settings, batch=self.context.batch,
                           concurrency=self.context.concurrency, metadata={"selftune": "eval judge"})
        results = [_verdict(reply) for reply in replies]
        self.reasons = [reason for _, reason in results]
        return [score for score, _ in results]

    def summary(self, answers: list[str], references: list[str], scores: list[float]) -> dict:
        reasons = getattr(self, "reasons", [])
        return {"judge": self.argument, "judge_errors": sum(r.startswith(JUDGE_ERROR) for r in reasons),
                "reasons": reasons}


def _verdict(reply: Reply) -> tuple[float, str]:
    """The judge's 1-5 score mapped to [0, 1], and its reason. A failed request scores 0 and is
    counted in the summary: never silently dropped."""
    if reply.failed:
        return 0.0, f"{JUDGE_ERROR}{reply.error}"
    try:
        verdict = json.loads(reply.text)
        score, reason = int(verdict["score"]), str(verdict.get("reason", ""))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        found = re.search(r"[1-5]", reply.text)  # a judge without structured output: its first digit
        score, reason = (int(found.group()) if found else 1), reply.text
    return (min(5, max(1, score)) - 1) / 4, reason
