"""Shapes of the Fine-tuning Jobs API, as ``openai.types.fine_tuning`` names them.

Requests are parsed leniently here (``extra="forbid"`` only where the hosted API refuses unknown
fields) and checked in the service, so every refusal can name its ``param``.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

Number = Union[Literal["auto"], int, float]
JobStatus = Literal["validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: Number | None = None
    learning_rate_multiplier: Number | None = None
    n_epochs: Number | None = None
    beta: Number | None = None  # dpo only


class MethodSettings(BaseModel):
    hyperparameters: Hyperparameters | None = None


class MethodRequest(BaseModel):
    type: str
    supervised: MethodSettings | None = None
    dpo: MethodSettings | None = None
    reinforcement: dict | None = None


class JobCreateRequest(BaseModel):
    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = None  # the hosted API's older place for them
    method: MethodRequest | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, Any] | None = None
    integrations: list[dict] | None = None


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
