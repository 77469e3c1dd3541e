"""Routes of ``/v1/fine_tuning/jobs``: parse, call :class:`JobService`, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from selftune.api.auth import Org
from selftune.api.errors import error_responses
from selftune.api.fine_tuning.protocol import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    JobCreateRequest,
)
from selftune.api.fine_tuning.service import JobService
from selftune.api.metadata import METADATA_QUERY, metadata_filter
from selftune.api.pagination import Limit, Page, list_body

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"])


def _job_links(job_id: str) -> dict:
    """OpenAPI links from an answer holding a job id (at the expression ``job_id``) to every operation on
    that job, so a stateful client (or the contract fuzzer) goes on with a real id."""
    operations = ("retrieve_job", "cancel_job", "pause_job", "resume_job", "list_events", "list_checkpoints")
    return {"links": {op: {"operationId": op, "parameters": {"fine_tuning_job_id": job_id}} for op in operations}}


def jobs(request: Request) -> JobService:
    return request.app.state.jobs


Jobs = Annotated[JobService, Depends(jobs)]


@router.post("", response_model=FineTuningJob,
             responses={**error_responses(404), 200: _job_links("$response.body#/id")})
def create_job(body: JobCreateRequest, org: Org, service: Jobs) -> FineTuningJob:
    return service.create(org, body)


@router.get("", response_model=Page[FineTuningJob], openapi_extra=METADATA_QUERY,
            responses={**error_responses(404), 200: _job_links("$response.body#/data/0/id")})
def list_jobs(request: Request, org: Org, service: Jobs, after: str | None = None, limit: Limit = 20):
    data, more = service.list(org, after, limit, metadata_filter(request))
    return list_body([d.model_dump() for d in data], more)


@router.get("/{fine_tuning_job_id}", response_model=FineTuningJob, responses={**error_responses(404), 200: {
    "links": {"retrieve_model": {"operationId": "retrieve_model",
                                 "parameters": {"model": "$response.body#/fine_tuned_model"}}}}})
def retrieve_job(fine_tuning_job_id: str, org: Org, service: Jobs) -> FineTuningJob:
    return service.retrieve(org, fine_tuning_job_id)


@router.post("/{fine_tuning_job_id}/cancel", response_model=FineTuningJob, responses=error_responses(404))
def cancel_job(fine_tuning_job_id: str, org: Org, service: Jobs) -> FineTuningJob:
    return service.cancel(org, fine_tuning_job_id)


@router.post("/{fine_tuning_job_id}/pause", response_model=FineTuningJob, responses=error_responses(404))
def pause_job(fine_tuning_job_id: str, org: Org, service: Jobs) -> FineTuningJob:
    return service.pause(org, fine_tuning_job_id)


@router.post("/{fine_tuning_job_id}/resume", response_model=FineTuningJob, responses=error_responses(404))
def resume_job(fine_tuning_job_id: str, org: Org, service: Jobs) -> FineTuningJob:
    return service.resume(org, fine_tuning_job_id)


@router.get("/{fine_tuning_job_id}/events", response_model=Page[FineTuningJobEvent],
            responses=error_responses(404))
def list_events(fine_tuning_job_id: str, org: Org, service: Jobs, after: str | None = None, limit: Limit = 20):
    data, more = service.events(org, fine_tuning_job_id, after, limit)
    return list_body([d.model_dump() for d in data], more)


@router.get("/{fine_tuning_job_id}/checkpoints", response_model=Page[FineTuningJobCheckpoint],
            responses={**error_responses(404), 200: {"links": {"retrieve_model": {
                "operationId": "retrieve_model",
                "parameters": {"model": "$response.body#/data/0/fine_tuned_model_checkpoint"}}}}})
def list_checkpoints(fine_tuning_job_id: str, org: Org, service: Jobs, after: str | None = None,
                     limit: Limit = 10):
    data, more = service.checkpoints(org, fine_tuning_job_id, after, limit)
    return list_body([d.model_dump() for d in data], more)
