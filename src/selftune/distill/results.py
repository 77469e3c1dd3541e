"""What a distillation run returns, and writes beside its training file as ``.summary.json``."""

from __future__ import annotations

from pydantic import BaseModel


class TokenCounts(BaseModel):
    prompt: int
    completion: int


class DistillSummary(BaseModel):
    out: str  # the training file written
    prompts: int
    kept: int
    dropped: dict[str, int]  # by reason, sorted
    requests_this_run: int  # sent to the teacher now (not the answers reused from the cache)
    failed_requests_this_run: int
    answers_reused_from_cache: int
    teacher_tokens_this_run: TokenCounts
    teacher_cost_this_run: dict[str, float]  # by --price name
    check: list[str]  # file-level problems of the written file (too few examples for a job, ...)
