"""Routes of ``/v1/evaluations``: read-only, a selftune extension (the hosted API has no evaluations).
Scripts see what the dashboard shows: the caller's organisation's runs, newest first, cursor paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from selftune.api.auth import Org
from selftune.api.errors import error_responses
from selftune.api.evaluations.protocol import Evaluation
from selftune.api.evaluations.service import EvaluationService
from selftune.api.pagination import MAX_LIMIT, Page, list_body

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations (selftune extension)"])


def evaluations(request: Request) -> EvaluationService:
    return request.app.state.evaluations


Evaluations = Annotated[EvaluationService, Depends(evaluations)]


@router.get("", response_model=Page[Evaluation], responses={**error_responses(404), 200: {"links": {
    "retrieve": {"operationId": "retrieve_evaluation", "parameters": {"eval_id": "$response.body#/data/0/id"}}}}})
def list_evaluations(org: Org, service: Evaluations, after: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20):
    """The organisation's evaluations, newest first (``after``: the last id of the previous page)."""
    data, more = service.list(org, after, limit)
    return list_body([e.model_dump(mode="json") for e in data], more)


@router.get("/{eval_id}", response_model=Evaluation, responses=error_responses(404))
def retrieve_evaluation(eval_id: str, org: Org, service: Evaluations) -> Evaluation:
    return service.retrieve(org, eval_id)
