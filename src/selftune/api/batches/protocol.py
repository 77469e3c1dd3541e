"""Shapes of the Batch API, field for field as ``openai.types.Batch`` and ``batch_create_params``, and the
rules of a batch: its statuses, its endpoints and its limits (the hosted ones)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from selftune.api.files.protocol import ExpiresAfter
from selftune.api.metadata import METADATA_SCHEMA


class BatchStatus(StrEnum):
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


# statuses a runner still has work in; a batch in any other status is over
ACTIVE = (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS, BatchStatus.FINALIZING, BatchStatus.CANCELLING)
# when each status was entered: the Batch field holding its time (validating's is created_at)
ENTERED_AT = {BatchStatus.IN_PROGRESS: "in_progress_at", BatchStatus.FINALIZING: "finalizing_at",
              BatchStatus.COMPLETED: "completed_at", BatchStatus.FAILED: "failed_at",
              BatchStatus.EXPIRED: "expired_at", BatchStatus.CANCELLING: "cancelling_at",
              BatchStatus.CANCELLED: "cancelled_at"}


class RequestStatus(StrEnum):
    """Where one request of a batch stands (not shown by the API: it decides the output and error files)."""

    PENDING = "pending"
    DONE = "done"  # answered with a 2xx: a line of the output file
    FAILED = "failed"  # answered with an error, or never runnable: a line of the error file


CHAT_ENDPOINT, RESPONSES_ENDPOINT = "/v1/chat/completions", "/v1/responses"
ENDPOINTS = (CHAT_ENDPOINT, RESPONSES_ENDPOINT)  # what a batch here may call
HOSTED_ENDPOINTS = ("/v1/embeddings", "/v1/completions", "/v1/moderations", "/v1/images/generations",
                    "/v1/images/edits", "/v1/videos")  # hosted, not served by selftune: refused by name
COMPLETION_WINDOWS = {"24h": 24 * 3600}
MAX_REQUESTS = 50_000
MAX_INPUT_BYTES = 200 * 1024**2


class BatchCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_file_id: str
    endpoint: str  # checked by the service, so that an endpoint selftune lacks is refused by name
    completion_window: str
    metadata: dict[str, str] | None = Field(None, json_schema_extra=METADATA_SCHEMA)
    output_expires_after: ExpiresAfter | None = None  # of the output and error files


class BatchError(BaseModel):
    code: str | None = None
    line: int | None = None
    message: str | None = None
    param: str | None = None


class Errors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError]


class BatchRequestCounts(BaseModel):
    completed: int
    failed: int
    total: int


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class BatchUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = InputTokensDetails()
    output_tokens: int
    output_tokens_details: OutputTokensDetails = OutputTokensDetails()
    total_tokens: int


class Batch(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: Errors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts
    usage: BatchUsage
    metadata: dict[str, str] | None = None
    model: str | None = None
