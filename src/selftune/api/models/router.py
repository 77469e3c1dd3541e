"""Routes of ``/v1/models``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from selftune.api.auth import Org
from selftune.api.models.protocol import Model, ModelDeleted
from selftune.api.models.service import ModelService

router = APIRouter(prefix="/v1/models", tags=["models"])


def models(request: Request) -> ModelService:
    return request.app.state.models


Models = Annotated[ModelService, Depends(models)]


@router.get("")
def list_models(org: Org, service: Models) -> dict:
    return {"object": "list", "data": [m.model_dump() for m in service.list(org)]}


# model ids contain ':' and, for hub models, '/': the path converter takes the rest of the URL
@router.get("/{model:path}", response_model=Model)
def retrieve_model(model: str, org: Org, service: Models) -> Model:
    return service.retrieve(org, model)


@router.delete("/{model:path}", response_model=ModelDeleted)
def delete_model(model: str, org: Org, service: Models) -> ModelDeleted:
    return service.delete(org, model)
