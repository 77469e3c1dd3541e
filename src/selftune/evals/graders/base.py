"""What every grader is: a name, and scores in [0, 1] for a list of answers."""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from selftune.errors import SelftuneError

if TYPE_CHECKING:
    import openai

GRADERS: dict[str, type[Grader]] = {}


@dataclass
class GradingContext:
    """What a grader may need beyond the answers: the label set of a classification, and for graders
    that ask a model (a judge) the endpoint to ask and how: so many requests in flight, or one batch."""

    labels: list[str] | None = None
    client: openai.OpenAI | None = None  # the run's endpoint
    judge_client: openai.OpenAI | None = None  # the judge's own endpoint, when it is elsewhere
    concurrency: int = 4
    batch: bool = False  # a judge's requests go as one batch of the Batch API (--batch)
    seed: int = 0  # of the bootstrap intervals a grader's summary adds

    @property
    def judge(self) -> openai.OpenAI | None:
        return self.judge_client or self.client


class Grader(ABC):
    name: ClassVar[str]
    needs_argument: ClassVar[bool] = False
    description: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None):
            GRADERS[cls.name] = cls

    def __init__(self, argument: str | None, context: GradingContext):
        if self.needs_argument and not argument:
            raise SelftuneError(f"the {self.name} grader needs an argument: --grader {self.name}:...")
        self.argument = argument
        self.context = context

    def score(self, answer: str, reference: str) -> float:
        """One answer's score; graders that work in batches override :meth:`score_all` instead."""
        raise NotImplementedError

    def score_all(self, answers: list[str], references: list[str]) -> list[float]:
        return [self.score(a, r) for a, r in zip(answers, references, strict=True)]

    def summary(self, answers: list[str], references: list[str], scores: list[float]) -> dict:
        """Measures beyond the mean score (per-class figures, a confusion matrix, ...)."""
        return {}

    @property
    def label(self) -> str:
        return f"{self.name}:{self.argument}" if self.argument else self.name
