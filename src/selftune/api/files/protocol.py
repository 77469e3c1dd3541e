"""Shapes of the Files API, field for field as ``openai.types.FileObject`` / ``FileDeleted``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

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
