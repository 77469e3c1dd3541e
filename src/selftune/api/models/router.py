"""Routes of ``/v1/models``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from selftune.api.auth import Org
from selftune.api.errors import error_responses
from selftune.api.models.protocol import Model, ModelDeleted, ModelList
from selftune.api.models.service import ModelService

router = APIRouter(prefix="/v1/models", tags=["models"])


def models(request: Request) -> ModelService:
    return request.app.state.models


Models = Annotated[ModelService, Depends(models)]


@router.get("", response_model=ModelList, responses={**error_responses(), 200: {"links": {
    op: {"operationId": op, "parameters": {"model": "$response.body#/data/0/id"}}
    for op in ("retrieve_model", "delete_model")} | {
    "chat": {"operationId": "create_chat_completion", "requestBody": {"model": "$response.body#/data/0/id"}}}}})
def list_models(org: Org, service: Models):
    return {"object": "list", "data": [m.model_dump() for m in service.list(org)]}


# model ids contain ':' and, for hub models, '/': the path converter takes the rest of the URL
@router.get("/{model:path}", response_model=Model, responses=error_responses(404))
def retrieve_model(model: str, org: Org, service: Models) -> Model:
    return service.retrieve(org, model)


@router.delete("/{model:path}", response_model=ModelDeleted, responses=error_responses(403, 404))
def delete_model(model: str, org: Org, service: Models) -> ModelDeleted:
    return service.delete(org, model)
