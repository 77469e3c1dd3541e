"""``EvalConfig``: every setting of an evaluation, typed, described and checked in one place.

The ``selftune eval`` options take their defaults and help text from these fields, so the command
line, the Python API and the docs say the same thing.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from selftune.data.reader import same_file
from selftune.evals.prices import DEFAULT_HOURLY_PRICE, TokenPrice


class ModelEndpoint(BaseModel):
    """A model under test and where it is served; a model without its own endpoint is reached through
    the run's (``EvalConfig.base_url``), so old and new models can sit side by side in one report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="The model id the endpoint knows: ft:... or a base model.")
    base_url: str | None = Field(None, description="Its OpenAI-compatible endpoint; default: the run's.")
    api_key: str | None = Field(None, description="Its endpoint's API key; default: the run's.")
    price: TokenPrice | None = Field(None, description="What its provider charges per token (a hosted model); "
                                                       "default: its measured time on this machine at the "
                                                       "hourly price.")


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: Path = Field(description="Held-out chat JSONL: each example's last message is the reference answer.")
    models: list[ModelEndpoint] = Field(
        description="A model to evaluate (repeat the option for several): ft:... or a base model.")
    few_shot: int = Field(0, ge=0, description="Examples in the prompt of base models (models not named ft:...).")
    few_shot_from: Path | None = Field(None, description="The training file the few-shot examples and the label "
                                                         "set come from.")
    graders: list[str] = Field(
        default_factory=list, description="exact, normalized, classification, json, regex:PATTERN, "
                                          "embedding[:MODEL], judge:MODEL (default: classification when the "
                                          "answers are labels, json when they are JSON objects or --schema "
                                          "is given, else normalized).")
    schema_file: Path | None = Field(None, description="A JSON schema file: every model is also run with "
                                                       "response_format json_schema (constrained decoding), as "
                                                       "its own 'MODEL + schema' row.")
    base_url: str | None = Field(None, description="Any OpenAI-compatible endpoint (default: the local selftune "
                                                   "server, started if none is running).")
    api_key: str | None = Field(None, description="API key of the endpoint.")
    judge_base_url: str | None = Field(None, description="Endpoint of the judge model, if elsewhere.")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once (without --batch).")
    batch: bool = Field(False, description="Send the requests (a judge's too) through the endpoint's Batch API "
                                           "(/v1/batches, which the hosted service charges half for), one batch "
                                           "per model, instead of one by one. Answers come when each batch ends; "
                                           "latency per request is not measured.")
    limit: int | None = Field(None, ge=1, description="Evaluate a seeded random sample of this many examples.")
    seed: int = Field(0, description="Seeds the sample (--limit), the few-shot examples and the bootstrap.")
    max_tokens: int | None = Field(None, ge=1, description="Answer length cap (default: from the longest "
                                                           "reference).")
    hourly_price: float = Field(DEFAULT_HOURLY_PRICE, ge=0, description="Dollars an hour this machine costs (for "
                                                                        "the local cost column).")
    prices: list[TokenPrice] = Field(
        default_factory=list, description="NAME=INPUT:OUTPUT dollars per million tokens: adds what the same "
                                          "tokens would cost there.")
    agreement_with: str | None = Field(None, description="A model of the run whose answers the others are "
                                                          "compared with: how often each gives the same answer "
                                                          "(an old model that a new one should replace).")
    out: Path = Field(Path("eval-report"), description="Where report.html, report.json and results.jsonl go.")

    @field_validator("models", mode="before")
    @classmethod
    def _model_ids(cls, models):
        """A bare model id is a model reached through the run's endpoint."""
        if isinstance(models, (list, tuple)):
            return [{"model": m} if isinstance(m, str) else m for m in models]
        return models

    @model_validator(mode="after")
    def _check(self) -> EvalConfig:
        if not self.models:
            raise ValueError("name at least one --model")
        if self.few_shot and self.few_shot_from is None:
            raise ValueError("--few-shot needs --few-shot-from TRAIN.jsonl (examples never come from the test file)")
        if self.agreement_with is not None and self.agreement_with not in [m.model for m in self.models]:
            raise ValueError(f"agreement_with {self.agreement_with!r} is not one of the models evaluated")
        if len({m.model for m in self.models}) != len(self.models):
            raise ValueError("a model is named twice: each model of a run needs its own id")
        if self.few_shot_from is not None and same_file(self.few_shot_from, self.data):
            raise ValueError("--few-shot-from is the test file: few-shot examples must come from the training data")
        return self

    @property
    def needs_run_endpoint(self) -> bool:
        """Whether anything is reached through the run's endpoint: a model without its own, or a judge
        without ``judge_base_url``. When nothing is, no local server is started."""
        judged = any(spec.partition(":")[0] == "judge" for spec in self.graders)
        return any(m.base_url is None for m in self.models) or (judged and self.judge_base_url is None)
