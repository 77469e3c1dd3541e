"""What an evaluation returns: the shapes ``report.json`` and ``results.jsonl`` hold, and that the
terminal table, the HTML report and its figures read by attribute."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from selftune.evals.prices import TokenPrice

FINE_TUNED = "fine-tuned"  # the kind of a model whose id starts with ft:
LOCAL_COST = "local"  # the cost basis of a model served here: its measured time at the hourly price
SCHEMA_VARIANT = " + schema"  # a model's row when its answers were decoded under the run's JSON schema


def run_name(model: str, constrained: bool) -> str:
    """The name of one row of the report: the model id, and `` + schema`` for its constrained run."""
    return f"{model}{SCHEMA_VARIANT}" if constrained else model


class Quality(BaseModel):
    """One grader's verdict on one model: the mean score with its 95% bootstrap interval, and the
    grader's own measures beside them (a classification's macro-F1 and confusion matrix, a judge's
    reasons, ...), kept as extra fields so that each grader may add its kind."""

    model_config = ConfigDict(extra="allow")

    mean: float
    ci95: tuple[float, float]


class Latency(BaseModel):
    """Seconds per request; None (and ``all`` empty) when not measured: requests sent as a batch wait
    in its queue, so only the batch's wall time is known."""

    p50: float | None
    p95: float | None
    mean: float | None
    all: list[float]  # every request's, in the order of the examples

    @property
    def measured(self) -> bool:
        return self.p50 is not None


NOT_MEASURED = Latency(p50=None, p95=None, mean=None, all=[])


class ModelResult(BaseModel):
    model: str
    kind: str  # "fine-tuned", "base" or "base, K-shot"
    endpoint: str  # where its requests went
    requests: int
    errors: int  # requests that failed after retries (graded as wrong)
    quality: dict[str, Quality]  # by grader label, in the order of the graders
    prompt_tokens: float  # per request, mean over the answered ones
    completion_tokens: float
    latency_s: Latency
    wall_s: float  # from the first request sent to the last answer (a batch: from its creation to its end)
    requests_per_s: float | None
    cost_per_1000: dict[str, float]  # its own cost (under cost_basis), then each --price by name
    cost_basis: str = LOCAL_COST  # "local": measured time on this machine; else the name of its own price
    constrained: bool = False  # decoded under the run's JSON schema (response_format json_schema)

    @property
    def name(self) -> str:
        """The row's name: the model id, with `` + schema`` for its constrained run."""
        return run_name(self.model, self.constrained)

    @property
    def fine_tuned(self) -> bool:
        return self.kind == FINE_TUNED

    @property
    def own_cost(self) -> float:
        """What 1,000 of its requests cost where it is served."""
        return self.cost_per_1000[self.cost_basis]


class Agreement(BaseModel):
    """How often ``model`` (a row's name) gave the same answer as ``with_model`` (see
    :mod:`selftune.evals.agreement`)."""

    model: str
    with_model: str
    share: float
    ci95: tuple[float, float]


class Comparison(BaseModel):
    """What a fine-tuned model bought against a base model: quality gained, and how many times fewer
    prompt tokens, less latency and less cost it needed (None where the fine-tuned figure is 0).
    ``fine_tuned`` and ``base`` are row names (:func:`run_name`)."""

    fine_tuned: str
    base: str
    base_kind: str
    grader: str
    quality_gain: float
    prompt_tokens_ratio: float | None
    latency_p50_ratio: float | None
    local_cost_ratio: float | None


class EvalReport(BaseModel):
    """``report.json``: the run's settings and every model's figures."""

    data: str
    examples: int
    seed: int
    endpoint: str | None  # the run's endpoint; None when every model had its own
    max_tokens: int
    concurrency: int
    batch: bool = False  # the requests went through the Batch API, one batch per model (--batch)
    few_shot: int
    schema_file: str | None = None  # the JSON schema file the "+ schema" rows were decoded under
    labels: list[str] | None
    graders: list[str]
    hourly_price: float
    prices: list[TokenPrice]
    models: list[ModelResult]
    comparisons: list[Comparison]
    agreements: list[Agreement] = []

    @property
    def grader(self) -> str:
        """The grader the table, the figures and the comparisons use: the first one named."""
        return self.graders[0]


class ExampleResult(BaseModel):
    """One line of ``results.jsonl``: one model's answer to one example, and its scores."""

    model: str
    line: int
    prompt: str | None  # the last non-system message
    reference: str
    answer: str
    scores: dict[str, float]  # by grader label
    prompt_tokens: int
    completion_tokens: int
    latency_s: float | None  # None: sent in a batch (--batch), not timed on its own
    error: str | None
    constrained: bool = False  # the answer was decoded under the run's JSON schema

    @property
    def name(self) -> str:
        return run_name(self.model, self.constrained)
