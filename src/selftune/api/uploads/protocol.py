"""Shapes of the Uploads API, field for field as ``openai.types.Upload``, ``UploadPart`` and the create and
complete params."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from selftune.api.files.protocol import ExpiresAfter, FileObject  # the expiry of the File it becomes

MAX_UPLOAD_BYTES = 8 * 1024**3
MAX_PART_BYTES = 64 * 1024**2  # the openai SDK's upload_file_chunked sends parts of exactly this size

UploadStatus = Literal["pending", "completed", "cancelled", "expired"]


class UploadCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bytes: int  # checked by the service, so that each refusal names its field
    filename: str
    mime_type: str
    purpose: str
    expires_after: ExpiresAfter | None = None


class UploadCompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    part_ids: list[str]
    md5: str | None = Field(None, description="Hex md5 of the whole file: the upload fails if the bytes differ.")


class Upload(BaseModel):
    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: UploadStatus
    file: FileObject | None = None


class UploadPart(BaseModel):
    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str
