"""Shapes of ``/v1/evaluations`` (a selftune extension: the hosted API has no such objects) and the one
list of an evaluation's statuses."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel


class EvalStatus(StrEnum):
    QUEUED = "queued"  # started from the dashboard, waiting for the run before it
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINISHED = frozenset({EvalStatus.SUCCEEDED, EvalStatus.FAILED})


class ModelFigures(BaseModel):
    """One model's headline figures, as the evaluation's report gave them (never recomputed)."""

    model: str
    kind: str  # "fine-tuned", "base" or "base, K-shot"
    grader: str  # the report's main grader: the score's name
    score: float  # its mean score
    ci95: tuple[float, float]
    n: int  # requests (examples)
    errors: int
    latency_p50_s: float | None  # None: not measured (its requests went as a batch)
    cost_per_1000: float  # its own cost for 1,000 requests, under cost_basis
    cost_basis: str


class Progress(BaseModel):
    done: int
    total: int


class Evaluation(BaseModel):
    id: str
    object: Literal["evaluation"] = "evaluation"
    created_at: int
    finished_at: int | None
    status: EvalStatus
    data_name: str  # the held-out file, as its owner named it (shown, never used as a path)
    models: list[str]
    config: dict  # the run's settings (EvalConfig without API keys)
    figures: list[ModelFigures]
    progress: Progress
    error: str | None
    has_report: bool


class EvaluationDeleted(BaseModel):
    id: str
    object: Literal["evaluation.deleted"] = "evaluation.deleted"
    deleted: bool
