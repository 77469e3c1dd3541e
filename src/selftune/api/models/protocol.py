"""Shapes of the Models API, as ``openai.types.Model`` / ``ModelDeleted``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool


class ModelList(BaseModel):
    """``GET /v1/models``: every model at once, without the cursor fields of the paged lists."""

    object: Literal["list"] = "list"
    data: list[Model]
