"""Shapes of the Files API, field for field as ``openai.types.FileObject`` / ``FileDeleted``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from selftune.api.errors import bad_request

EXPIRES_MIN, EXPIRES_MAX = 3600, 30 * 24 * 3600  # a file's expires_after: 1 hour to 30 days, as hosted
PURPOSES = ("fine-tune", "batch", "user_data", "evals", "assistants", "vision")  # what a client may upload
Purpose = Literal["fine-tune", "fine-tune-results", "batch", "batch_output", "user_data", "evals",
                  "assistants", "assistants_output", "vision"]


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: Purpose
    status: Literal["uploaded", "processed", "error"]
    expires_at: int | None = None
    status_details: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


class ExpiresAfter(BaseModel):
    """When a file expires, as a JSON body gives it (an upload's ``expires_after``, a batch's
    ``output_expires_after``); ``POST /v1/files`` sends the same two fields as form fields."""

    model_config = ConfigDict(extra="forbid")
    anchor: Literal["created_at"]
    seconds: int


def expiry_seconds(seconds: int | None, param: str) -> int | None:
    """``seconds`` if within the hosted range, else a 400 naming ``param``."""
    if seconds is not None and not EXPIRES_MIN <= seconds <= EXPIRES_MAX:
        raise bad_request(f"{param} must be between 3600 (1 hour) and 2592000 (30 days).", param=param)
    return seconds
