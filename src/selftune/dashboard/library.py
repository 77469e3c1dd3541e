"""The files page, one file's page (its problems and, on demand, its token statistics) and the models
page (base models, fine-tuned models and their checkpoints), with delete buttons.

They read and delete through the services the API uses (``Files``, ``Models``, ``Jobs``), scoped to
the viewer's organisation, so a delete follows the API's rules (a base model or a checkpoint can't be
deleted) and another organisation's file or model is as absent as one never made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from selftune.api.errors import APIError
from selftune.api.files.router import Files
from selftune.api.fine_tuning.protocol import FineTuningJob
from selftune.api.fine_tuning.router import Jobs
from selftune.api.models.router import Models
from selftune.api.pagination import MAX_LIMIT
from selftune.dashboard.access import PostedBy, Who
from selftune.dashboard.render import render, secure
from selftune.dashboard.views import file_name
from selftune.errors import SelftuneError
from selftune.jobs.lifecycle import JobStatus
from selftune.models.catalog import base_models
from selftune.models.ids import parse_fine_tuned_id

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
JOBS_SCANNED = 2 * MAX_LIMIT  # the newest jobs whose checkpoints the models page and the playground offer
CHECKPOINTS_SHOWN = MAX_LIMIT
NO_CHECKPOINTS_YET = {JobStatus.VALIDATING_FILES, JobStatus.QUEUED}


# ---- the models an organisation can chat with ------------------------------------------------------
@dataclass
class TrainedModels:
    """One job's fine-tuned model (None while it trains, or once deleted) and its checkpoints."""

    job: FineTuningJob
    model: str | None
    training_name: str | None  # the training file's name; None once the file is deleted
    checkpoints: list = field(default_factory=list)  # FineTuningJobCheckpoint, newest first


def trained_models(org: str, models, jobs, files=None) -> list[TrainedModels]:
    """The organisation's fine-tuned models (every one the models service lists) and the checkpoints of
    its newest jobs, grouped by job, newest job first. ``files`` given: each with its training file's name."""
    fine_tuned = [m.id for m in models.list(org) if parse_fine_tuned_id(m.id) is not None]
    found: dict[str, FineTuningJob] = {}
    after = None
    while len(found) < JOBS_SCANNED:
        page, more = jobs.list(org, after, MAX_LIMIT, {})
        for job in page:
            found[job.id] = job
        if not more or not page:
            break
        after = page[-1].id
    owner = {}
    for model_id in fine_tuned:  # an older job's model: its job too, whatever its age
        job_id = "ftjob-" + parse_fine_tuned_id(model_id).job
        if job_id not in found:
            try:
                found[job_id] = jobs.retrieve(org, job_id)
            except APIError:
                continue
        owner[job_id] = model_id
    entries = []
    for job in sorted(found.values(), key=lambda j: j.created_at, reverse=True):
        checkpoints = []
        if job.status not in NO_CHECKPOINTS_YET:
            checkpoints, _ = jobs.checkpoints(org, job.id, None, CHECKPOINTS_SHOWN)
        model = owner.get(job.id)
        if model is None and not checkpoints:
            continue
        name = file_name(files, org, job.training_file) if files is not None else None
        entries.append(TrainedModels(job, model, name, checkpoints))
    return entries


def playground_link(*model_ids: str) -> str:
    return "/playground?" + urlencode([("model", m) for m in model_ids if m])


# ---- files ------------------------------------------------------------------------------------------
def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@router.get("/files")
def files_page(request: Request, who: Who, files: Files, after: str = "",
               limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = PAGE_SIZE, deleted: str = ""):
    problem, listed, more = None, [], False
    try:
        listed, more = files.list(who.org, None, after or None, limit, "desc")
    except APIError as exc:
        problem = exc.message
    query = {"limit": str(limit)} if limit != PAGE_SIZE else {}
    next_query = urlencode({**query, "after": listed[-1].id}) if listed else ""
    return render(request, who, "files.html", files=listed, more=more, after=after, problem=problem,
                  deleted=deleted, size=_size, next_query=next_query, first_query=urlencode(query))


def _stats(path, model: str):
    from selftune.data.stats import stats

    return stats(path, base_models()[model].source, measure_speed=False)


@router.get("/files/{file_id}")
def file_page(request: Request, file_id: str, who: Who, files: Files, model: str = ""):
    """A file, its problems and, when a base model is chosen, its token statistics in that model's
    tokenizer (loaded then, not for the list)."""
    try:
        file = files.retrieve(who.org, file_id)
    except APIError as exc:
        return render(request, who, "error.html", status_code=exc.status, message=exc.message)
    bases = sorted(base_models())
    stats = stats_problem = None
    if model:
        if model not in bases:
            stats_problem = f"model: {model!r} is not a base model of this server ({', '.join(bases)})."
        elif file.purpose != "fine-tune" or file.status != "processed":
            stats_problem = "Token statistics are counted for valid fine-tune files only."
        else:
            try:
                path, _ = files.content_path(who.org, file_id)
                stats = _stats(path, model)
            except (SelftuneError, APIError, OSError, ValueError) as exc:  # a tokenizer that won't load, too
                stats_problem = getattr(exc, "message", None) or str(exc)
    return render(request, who, "file.html", file=file, size=_size, bases=bases, model=model, stats=stats,
                  stats_problem=stats_problem)


@router.post("/files/{file_id}/delete")
def file_delete(request: Request, file_id: str, who: PostedBy, files: Files):
    """As ``DELETE /v1/files/{id}``; back to the files page, which says what was deleted."""
    try:
        files.delete(who.org, file_id)
    except APIError as exc:
        return render(request, who, "error.html", status_code=exc.status, message=exc.message)
    return secure(RedirectResponse("/files?" + urlencode({"deleted": file_id}), status_code=303))


# ---- models -----------------------------------------------------------------------------------------
def _models_context(who, models, jobs, files) -> dict:
    return {"bases": list(base_models().values()), "trained": trained_models(who.org, models, jobs, files),
            "playground": playground_link}


@router.get("/models")
def models_page(request: Request, who: Who, models: Models, jobs: Jobs, files: Files, deleted: str = ""):
    return render(request, who, "models.html", problem=None, deleted=deleted,
                  **_models_context(who, models, jobs, files))


@router.post("/models/delete")
async def model_delete(request: Request, who: PostedBy, models: Models, jobs: Jobs, files: Files):
    """As ``DELETE /v1/models/{id}``: fine-tuned models only, never a base model or one checkpoint."""
    model = (await request.form()).get("model")
    try:
        if not isinstance(model, str) or not model:
            raise APIError(400, "model: which model to delete is missing.", param="model")
        await run_in_threadpool(models.delete, who.org, model)
    except APIError as exc:
        context = await run_in_threadpool(_models_context, who, models, jobs, files)
        return render(request, who, "models.html", status_code=exc.status, problem=exc.message, deleted="",
                      **context)
    return secure(RedirectResponse("/models?" + urlencode({"deleted": model}), status_code=303))
