"""Routes of ``/v1/batches``: create, retrieve, cancel, list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from selftune.api.auth import Org
from selftune.api.batches.protocol import Batch, BatchCreateRequest
from selftune.api.batches.service import BatchService
from selftune.api.errors import error_responses
from selftune.api.pagination import Limit, Page, list_body

router = APIRouter(prefix="/v1/batches", tags=["batches"])
BY_ID = {"batch_id": "$response.body#/id"}


def batches(request: Request) -> BatchService:
    return request.app.state.batches


Batches = Annotated[BatchService, Depends(batches)]


@router.post("", response_model=Batch, responses={**error_responses(404), 200: {"links": {
    op: {"operationId": op, "parameters": BY_ID} for op in ("retrieve_batch", "cancel_batch")}}})
def create_batch(body: BatchCreateRequest, org: Org, service: Batches) -> Batch:
    return service.create(org, body)


@router.get("/{batch_id}", response_model=Batch, responses=error_responses(404))
def retrieve_batch(batch_id: str, org: Org, service: Batches) -> Batch:
    return service.retrieve(org, batch_id)


@router.post("/{batch_id}/cancel", response_model=Batch, responses=error_responses(404))
def cancel_batch(batch_id: str, org: Org, service: Batches) -> Batch:
    return service.cancel(org, batch_id)


@router.get("", response_model=Page[Batch], responses=error_responses(404))
def list_batches(org: Org, service: Batches, after: str | None = None, limit: Limit = 20):
    data, more = service.list(org, after, limit)
    return list_body([b.model_dump(mode="json") for b in data], more)
