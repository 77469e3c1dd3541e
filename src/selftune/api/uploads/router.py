"""Routes of ``/v1/uploads``: parse the request, call :class:`UploadService`, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from selftune.api.auth import Org
from selftune.api.errors import APIError, bad_request, error_responses
from selftune.api.files.router import MULTIPART_OVERHEAD
from selftune.api.forms import read_form
from selftune.api.uploads.protocol import Upload, UploadCompleteRequest, UploadCreateRequest, UploadPart
from selftune.api.uploads.service import MAX_PART_BYTES, UploadService

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])
BY_ID = {"upload_id": "$response.body#/id"}

# The part is read by hand (its size is refused before the body is read), so FastAPI can't infer its schema.
PART = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["data"], "properties": {"data": {"type": "string", "format": "binary"}}},
    "encoding": {"data": {"contentType": "application/octet-stream"}}}}}}


def uploads(request: Request) -> UploadService:
    """The service, made on first use from the Files service it completes into (one line in app.py)."""
    state = request.app.state
    if getattr(state, "uploads", None) is None:
        state.uploads = UploadService(files=state.files)
    return state.uploads


Uploads = Annotated[UploadService, Depends(uploads)]


@router.post("", response_model=Upload, responses={**error_responses(), 200: {"links": {
    op: {"operationId": op, "parameters": BY_ID} for op in ("add_upload_part", "complete_upload", "cancel_upload")}}})
def create_upload(body: UploadCreateRequest, org: Org, service: Uploads) -> Upload:
    return service.create(org, body)


@router.post("/{upload_id}/parts", response_model=UploadPart, openapi_extra=PART,
             responses=error_responses(404, 413))
async def add_upload_part(upload_id: str, request: Request, org: Org, service: Uploads) -> UploadPart:
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_PART_BYTES + MULTIPART_OVERHEAD:  # refuse before reading the body
        raise APIError(413, f"A part may hold at most {MAX_PART_BYTES:,} bytes (64 MB).", param="data",
                       code="part_too_large")
    await run_in_threadpool(service.check_pending, org, upload_id)  # another's or a finished upload: no body read
    form = await read_form(request, max_files=1, max_fields=1)  # Starlette spools the file: 1 MB in memory, then disk
    try:
        data = form.get("data")
        if not isinstance(data, UploadFile):
            raise bad_request("Missing required parameter: 'data' (multipart upload).", param="data")
        return await run_in_threadpool(service.add_part, org, upload_id, data.file)
    finally:
        await form.close()


@router.post("/{upload_id}/complete", response_model=Upload, responses=error_responses(404))
def complete_upload(upload_id: str, body: UploadCompleteRequest, org: Org, service: Uploads) -> Upload:
    return service.complete(org, upload_id, body)


@router.post("/{upload_id}/cancel", response_model=Upload, responses=error_responses(404))
def cancel_upload(upload_id: str, org: Org, service: Uploads) -> Upload:
    return service.cancel(org, upload_id)
