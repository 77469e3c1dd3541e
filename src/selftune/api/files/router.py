"""Routes of ``/v1/files``: parse the request, call :class:`FileService`, shape the answer."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from selftune.api.auth import Org
from selftune.api.errors import APIError, bad_request, error_responses
from selftune.api.files.protocol import EXPIRES_MAX, EXPIRES_MIN, PURPOSES, FileDeleted, FileObject, expiry_seconds
from selftune.api.files.service import FileService
from selftune.api.forms import read_form
from selftune.api.pagination import Page, list_body

router = APIRouter(prefix="/v1/files", tags=["files"])
MULTIPART_OVERHEAD = 64 * 1024
BY_ID = {"file_id": "$response.body#/id"}

# The upload is read by hand (the size is refused before the body is read), so FastAPI can't infer its
# schema: this is what create_file and _expires_after accept, for clients and the contract fuzzer.
UPLOAD = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "purpose"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "purpose": {"type": "string", "enum": list(PURPOSES)},
        "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
        "expires_after[seconds]": {"type": "integer", "minimum": EXPIRES_MIN, "maximum": EXPIRES_MAX},
    }}, "encoding": {"file": {"contentType": "application/octet-stream"}}}}}}


def files(request: Request) -> FileService:
    return request.app.state.files


Files = Annotated[FileService, Depends(files)]


@router.post("", response_model=FileObject, openapi_extra=UPLOAD, responses={
    **error_responses(413), 200: {"links": {
        "retrieve": {"operationId": "retrieve_file", "parameters": BY_ID},
        "content": {"operationId": "file_content", "parameters": BY_ID},
        "delete": {"operationId": "delete_file", "parameters": BY_ID},
        "train": {"operationId": "create_job", "requestBody": {"training_file": "$response.body#/id"}}}}})
async def create_file(request: Request, org: Org, service: Files) -> FileObject:
    declared = int(request.headers.get("content-length") or 0)
    if declared > service.max_upload_bytes + MULTIPART_OVERHEAD:  # refuse before reading the body
        raise APIError(413, f"File is larger than the limit of {service.max_upload_bytes:,} bytes.",
                       param="file", code="file_too_large")
    form = await read_form(request)
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise bad_request("Missing required parameter: 'file' (multipart upload).", param="file")
    if not isinstance(purpose, str) or not purpose:
        raise bad_request("Missing required parameter: 'purpose'.", param="purpose")
    expires_after = _expires_after(form)
    try:
        return await run_in_threadpool(service.create, org, upload.filename or "upload", purpose, upload.file,
                                       expires_after)
    finally:
        await form.close()


def _expires_after(form) -> int | None:
    seconds = form.get("expires_after[seconds]")
    if seconds is None:
        return None
    if form.get("expires_after[anchor]", "created_at") != "created_at":
        raise bad_request("expires_after.anchor must be 'created_at'.", param="expires_after.anchor")
    try:
        value = int(seconds)
    except (TypeError, ValueError):
        raise bad_request("expires_after.seconds must be an integer.", param="expires_after.seconds") from None
    return expiry_seconds(value, "expires_after.seconds")


@router.get("", response_model=Page[FileObject], responses={**error_responses(404), 200: {"links": {
    "retrieve": {"operationId": "retrieve_file", "parameters": {"file_id": "$response.body#/data/0/id"}}}}})
def list_files(org: Org, service: Files, purpose: str | None = None, after: str | None = None,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
               order: Literal["asc", "desc"] = "desc"):
    data, more = service.list(org, purpose, after, min(limit, 10_000), order)
    return list_body([d.model_dump() for d in data], more)


@router.get("/{file_id}", response_model=FileObject, responses=error_responses(404))
def retrieve_file(file_id: str, org: Org, service: Files) -> FileObject:
    return service.retrieve(org, file_id)


@router.delete("/{file_id}", response_model=FileDeleted, responses=error_responses(404))
def delete_file(file_id: str, org: Org, service: Files) -> FileDeleted:
    return service.delete(org, file_id)


@router.get("/{file_id}/content", response_class=FileResponse, responses={
    **error_responses(404), 200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                      "format": "binary"}}}}})
def file_content(file_id: str, org: Org, service: Files) -> FileResponse:
    path, filename = service.content_path(org, file_id)
    return FileResponse(path, media_type="application/octet-stream", filename=filename)

