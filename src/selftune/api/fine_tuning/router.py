"""Routes of ``/v1/fine_tuning/jobs``: parse, call :class:`JobService`, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from selftune.api.auth import Org
from selftune.api.fine_tuning.protocol import FineTuningJob, JobCreateRequest
from selftune.api.fine_tuning.service import JobService
from selftune.api.metadata import metadata_filter
from selftune.api.pagination import MAX_LIMIT, list_body

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"])
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def jobs(request: Request) -> JobService:
    return request.app.state.jobs


Jobs = Annotated[JobService, Depends(jobs)]


@router.post("", response_model=FineTuningJob)
def create_job(body: JobCreateRequest, org: Org, service: Jobs) -> FineTuningJob:
    return service.create(org, body)


@router.get("")
def list_jobs(request: Request, org: Org, service: Jobs, after: str | None = None, limit: Limit = 20) -> dict:
    data, more = service.list(org, after, limit, metadata_filter(request))
    return list_body([d.model_dump() for d in data], more)


@router.get("/{fine_tuning_job_id}", response_model=FineTuningJob)
def retrieve_job(fine_tuning_job_id: str, org: Org, service: Jobs) -> FineTuningJob:
    return service.retrieve(org, fine_tuning_job_id)


@router.post("/{fine_tuning_job_id}/cancel", response_model=FineTuningJob)
def cancel_job(fine_tuning_job_id: str, org: Org, service: Jobs) -> FineTuningJob:
    return service.cancel(org, fine_tuning_job_id)


@router.post("/{fine_tuning_job_id}/pause", response_model=FineTuningJob)
def pause_job(fine_tuning_job_id: str, org: Org, service: Jobs) -> FineTuningJob:
    return service.pause(org, fine_tuning_job_id)


@router.post("/{fine_tuning_job_id}/resume", response_model=FineTuningJob)
def resume_job(fine_tuning_job_id: str, org: Org, service: Jobs) -> FineTuningJob:
    return service.resume(org, fine_tuning_job_id)


@router.get("/{fine_tuning_job_id}/events")
def list_events(fine_tuning_job_id: str, org: Org, service: Jobs, after: str | None = None,
                limit: Limit = 20) -> dict:
    data, more = service.events(org, fine_tuning_job_id, after, limit)
    return list_body([d.model_dump() for d in data], more)


@router.get("/{fine_tuning_job_id}/checkpoints")
def list_checkpoints(fine_tuning_job_id: str, org: Org, service: Jobs, after: str | None = None,
                     limit: Limit = 10) -> dict:
    data, more = service.checkpoints(org, fine_tuning_job_id, after, limit)
    return list_body([d.model_dump() for d in data], more)
