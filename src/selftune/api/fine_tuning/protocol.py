"""Shapes of the Fine-tuning Jobs API, as ``openai.types.fine_tuning`` names them.

Requests are parsed leniently here (``extra="forbid"`` only where the hosted API refuses unknown
fields) and checked in the service, so every refusal can name its ``param``.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from selftune.api.metadata import METADATA_SCHEMA
from selftune.jobs.lifecycle import JobStatus
from selftune.models.ids import SUFFIX_PATTERN
from selftune.train.methods import HYPERPARAMETERS, METHODS, Hyperparameter

Number = Union[Literal["auto"], int, float]


def _declared(h: Hyperparameter) -> dict:
    """The OpenAPI schema of what the service accepts for ``h`` (it checks with ``h.problem``)."""
    low = "minimum" if h.low_included else "exclusiveMinimum"
    number = {"type": "integer" if h.kind is int else "number", low: h.low, "maximum": h.high}
    return {"anyOf": [{"const": "auto"}, number, {"type": "null"}]}


# one optional field per hyperparameter and per method of selftune.train.methods, so a new one is accepted
# (and documented in the OpenAPI schema) without another list to keep in step
Hyperparameters = create_model("Hyperparameters", __config__=ConfigDict(extra="forbid"),
                               **{name: (Optional[Number], Field(None, json_schema_extra=_declared(h)))
                                  for name, h in HYPERPARAMETERS.items()})


class MethodSettings(BaseModel):
    hyperparameters: Hyperparameters | None = None


MethodRequest = create_model("MethodRequest", type=(str, Field(json_schema_extra={"enum": [m.value for m in METHODS]})),
                             reinforcement=(Optional[dict], None),
                             **{method.value: (Optional[MethodSettings], None) for method in METHODS})


class JobCreateRequest(BaseModel):
    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = None  # the hosted API's older place for them
    method: MethodRequest | None = None
    # the json_schema_extra: what the service checks (with its own messages), declared for the schema
    suffix: str | None = Field(None, json_schema_extra={"pattern": SUFFIX_PATTERN.pattern})
    seed: int | None = None
    metadata: dict[str, Any] | None = Field(None, json_schema_extra=METADATA_SCHEMA)
    integrations: list[dict] | None = Field(None, json_schema_extra={"maxItems": 0})  # none supported yet


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: dict
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: JobStatus
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    estimated_finish: int | None = None
    integrations: list[dict] | None = None
    metadata: dict[str, str] | None = None
    method: dict
    user_provided_suffix: str | None = None


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    data: dict | None = Field(default_factory=dict)
    type: Literal["message", "metrics"] = "message"


class CheckpointMetrics(BaseModel):
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int
