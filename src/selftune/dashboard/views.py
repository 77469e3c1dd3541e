"""The dashboard's routes: pages, the fragments they poll, the curves' JSON, and the job buttons.

Every route reads through the services the API uses (``Jobs``, ``Files``: the same dependencies as
the routers), scoped to the viewer's organisation, so the dashboard shows exactly what the API would.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from selftune.api.errors import APIError
from selftune.api.files.router import Files
from selftune.api.fine_tuning.protocol import FineTuningJob
from selftune.api.fine_tuning.router import Jobs
from selftune.api.pagination import MAX_LIMIT
from selftune.dashboard.access import PostedBy, Who
from selftune.dashboard.curves import curves
from selftune.dashboard.render import render, secure
from selftune.jobs.lifecycle import ACTIVE, PAUSES_AT_ONCE, JobStatus

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
EVENTS_SHOWN = 100
CHECKPOINTS_SHOWN = 100
PAUSABLE = PAUSES_AT_ONCE | {JobStatus.RUNNING}
ACTIONS = ("cancel", "pause", "resume")  # the JobService methods the job page's buttons call


# ---- jobs -----------------------------------------------------------------------------------------
class JobFilter:
    """The jobs page's query: ``status``, ``metadata`` (``key=value``), ``after`` (cursor), ``limit``."""

    def __init__(self, status: str = "", metadata: str = "", after: str = "", limit: int = PAGE_SIZE):
        self.status, self.metadata, self.after, self.limit = status, metadata.strip(), after, limit
        self.problem = None
        if status and status not in {s.value for s in JobStatus}:
            self.problem = f"Unknown status {status!r}: expected one of {', '.join(JobStatus)}."
        if self.metadata and "=" not in self.metadata:
            self.problem = "The metadata filter is key=value, e.g. task=cards."

    @property
    def metadata_pairs(self) -> dict[str, str]:
        if not self.metadata or "=" not in self.metadata:
            return {}
        key, _, value = self.metadata.partition("=")
        return {key.strip(): value.strip()}

    def query(self, **change: str) -> str:
        """This filter as a query string (``change`` overrides fields; empty ones are left out)."""
        fields = {"status": self.status, "metadata": self.metadata, "after": self.after,
                  "limit": "" if self.limit == PAGE_SIZE else str(self.limit), **change}
        return urlencode({k: v for k, v in fields.items() if v})


def _filter(status: str = "", metadata: str = "", after: str = "",
            limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = PAGE_SIZE) -> JobFilter:
    return JobFilter(status, metadata, after, limit)


Filters = Annotated[JobFilter, Depends(_filter)]


def _jobs_context(who, service, filters: JobFilter) -> dict:
    jobs, more, progress = [], False, {}
    problem = filters.problem
    if problem is None:
        try:
            jobs, more = service.list(who.org, filters.after or None, filters.limit, filters.metadata_pairs,
                                      statuses=[filters.status] if filters.status else ())
            progress = service.progress(who.org, [job.id for job in jobs])
        except APIError as exc:
            problem = exc.message
    return {"jobs": jobs, "more": more, "progress": progress, "filters": filters, "problem": problem,
            "statuses": list(JobStatus)}


@router.get("/")
def jobs_page(request: Request, who: Who, service: Jobs, filters: Filters):
    return render(request, who, "jobs.html", **_jobs_context(who, service, filters))


@router.get("/fragments/jobs")
def jobs_table(request: Request, who: Who, service: Jobs, filters: Filters):
    return render(request, who, "_jobs_table.html", **_jobs_context(who, service, filters))


# ---- one job --------------------------------------------------------------------------------------
def file_name(files, org: str, file_id: str | None) -> str | None:
    """The name a file of ``org`` was uploaded with; None when there is none, or it has been deleted."""
    if not file_id:
        return None
    try:
        return files.retrieve(org, file_id).filename
    except APIError:
        return None  # deleted since: the page says so


def _summary_context(service, files, who, job: FineTuningJob, problem: str | None = None) -> dict:
    """What the polled status section shows; hyperparameters and results change as the job runs."""
    method = job.method["type"]
    return {"job": job, "progress": service.progress(who.org, [job.id]).get(job.id), "active": job.status in ACTIVE,
            "can_pause": job.status in PAUSABLE, "can_resume": job.status == JobStatus.PAUSED, "problem": problem,
            "hyperparameters": job.method.get(method, {}).get("hyperparameters", {}),
            "results": [(file_id, file_name(files, who.org, file_id)) for file_id in job.result_files]}


def _events_context(service, who, job: FineTuningJob) -> dict:
    events, more = service.events(who.org, job.id, None, EVENTS_SHOWN)
    return {"events": events, "more": more}


def _checkpoints_context(service, who, job: FineTuningJob) -> dict:
    checkpoints, _ = service.checkpoints(who.org, job.id, None, CHECKPOINTS_SHOWN)
    return {"checkpoints": checkpoints}


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, who: Who, service: Jobs, files: Files):
    try:
        job = service.retrieve(who.org, job_id)
    except APIError as exc:
        return render(request, who, "error.html", status_code=exc.status, message=exc.message)
    return render(request, who, "job.html", **_summary_context(service, files, who, job),
                  **_events_context(service, who, job), **_checkpoints_context(service, who, job),
                  training_name=file_name(files, who.org, job.training_file),
                  validation_name=file_name(files, who.org, job.validation_file))


def _fragment(request: Request, who, service, job_id: str, name: str, context) -> object:
    """A polled part of the job page; once the job is gone (deleted, or never this organisation's) it
    says so and stops polling."""
    try:
        job = service.retrieve(who.org, job_id)
        return render(request, who, name, **context(job))
    except APIError as exc:
        return render(request, who, "_gone.html", message=exc.message)


@router.get("/jobs/{job_id}/summary")
def job_summary(request: Request, job_id: str, who: Who, service: Jobs, files: Files):
    return _fragment(request, who, service, job_id, "_job_summary.html",
                     lambda job: _summary_context(service, files, who, job))


@router.get("/jobs/{job_id}/events")
def job_events(request: Request, job_id: str, who: Who, service: Jobs):
    return _fragment(request, who, service, job_id, "_job_events.html",
                     lambda job: {"job": job, "active": job.status in ACTIVE, **_events_context(service, who, job)})


@router.get("/jobs/{job_id}/checkpoints")
def job_checkpoints(request: Request, job_id: str, who: Who, service: Jobs):
    return _fragment(request, who, service, job_id, "_job_checkpoints.html",
                     lambda job: {"job": job, "active": job.status in ACTIVE,
                                  **_checkpoints_context(service, who, job)})


@router.get("/jobs/{job_id}/curves.json")
def job_curves(job_id: str, who: Who, service: Jobs, after: str | None = None):
    """The run's metrics after the event ``after`` (all of them without it), as chart columns."""
    try:
        job = service.retrieve(who.org, job_id)
        events = service.run_events(who.org, job_id, after or None)
    except APIError as exc:
        return secure(JSONResponse(exc.body(), status_code=exc.status))
    return secure(JSONResponse(curves(job, events)))


@router.post("/jobs/{job_id}/{action}")
def job_action(request: Request, job_id: str, action: str, who: PostedBy, service: Jobs, files: Files):
    """Cancel, pause or resume, as the API's routes do; answers the refreshed summary."""
    if action not in ACTIONS:
        return render(request, who, "error.html", status_code=404, message=f"No such action: {action!r}")
    problem = None
    try:
        job = getattr(service, action)(who.org, job_id)
    except APIError as exc:
        if exc.status == 404:
            return render(request, who, "error.html", status_code=404, message=exc.message)
        problem = exc.message
        job = service.retrieve(who.org, job_id)
    if "hx-request" not in request.headers:  # a plain form post (no JavaScript): back to the page
        return secure(RedirectResponse(f"/jobs/{job.id}", status_code=303))
    return render(request, who, "_job_summary.html", **_summary_context(service, files, who, job, problem))


@router.get("/files/{file_id}/content")
def file_content(file_id: str, who: Who, files: Files):
    """A file of the viewer's organisation (the results CSV), downloaded with the session, not a key."""
    try:
        path, filename = files.content_path(who.org, file_id)
    except APIError as exc:
        return secure(JSONResponse(exc.body(), status_code=exc.status))
    return secure(FileResponse(path, media_type="text/csv" if filename.endswith(".csv") else
                               "application/octet-stream", filename=filename))
