"""Model-graded: a judge model reads the question, the reference and the answer, and scores the
answer 1-5 against a rubric (``--grader judge:MODEL``; the judge is reached through the same
OpenAI-compatible endpoint as the models, or ``--judge-base-url``)."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import openai

from selftune.evals.graders.base import Grader

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
        workers = int(self.context.options.get("concurrency", 4))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(self._judge, answers, references))
        self.reasons = [reason for _, reason in results]
        return [score for score, _ in results]

    def _judge(self, answer: str, reference: str) -> tuple[float, str]:
        client = self.context.options.get("judge_client") or self.context.client
        try:
            response = client.chat.completions.create(
                model=self.argument, temperature=0, max_tokens=100,
                messages=[{"role": "system", "content": RUBRIC},
                          {"role": "user", "content": f"Reference answer:\n{reference}\n\nAnswer to grade:\n{answer}"}],
                response_format={"type": "json_schema", "json_schema": {"name": "grade", "schema": SCHEMA}})
        except openai.APIError as exc:  # counted in the summary, graded 0: never silently dropped
            return 0.0, f"{JUDGE_ERROR}{type(exc).__name__}: {exc}"
        text = response.choices[0].message.content or ""
        try:
            verdict = json.loads(text)
            score, reason = int(verdict["score"]), str(verdict.get("reason", ""))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            found = re.search(r"[1-5]", text)  # a judge without structured output: its first digit
            score, reason = (int(found.group()) if found else 1), text
        return (min(5, max(1, score)) - 1) / 4, reason

    def summary(self, answers: list[str], references: list[str], scores: list[float]) -> dict:
        reasons = getattr(self, "reasons", [])
        return {"judge": self.argument, "judge_errors": sum(r.startswith(JUDGE_ERROR) for r in reasons),
                "reasons": reasons}
