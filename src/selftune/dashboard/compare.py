"""The compare page: 2 to 8 jobs side by side, their curves overlaid, the settings that differ, and
(once the evaluations service is there) their evaluations' headline figures.

The jobs come from the address (``/compare?job=a&job=b``, what the jobs page's "Compare selected" form
sends), so a comparison can be bookmarked. The curves are drawn in the browser from each job's own
``/jobs/{id}/curves.json`` (the job page's data); this page only renders the settings, read through the
same services as the API and scoped to the viewer's organisation.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from selftune.api.errors import APIError
from selftune.api.files.router import Files
from selftune.api.fine_tuning.protocol import FineTuningJob
from selftune.api.fine_tuning.router import Jobs
from selftune.dashboard.access import Who
from selftune.dashboard.render import number, render, utc
from selftune.dashboard.views import file_name

router = APIRouter(include_in_schema=False)
MIN_JOBS, MAX_JOBS = 2, 8
ALWAYS_DIFFER = {"fine-tuned model", "created"}  # in "all settings" only: they tell nothing in "differ"
EVENT_PAGE, EVENT_PAGES = 100, 50  # the newest events searched for a job's final training and validation loss


def job_ids(values: list[str]) -> list[str]:
    """The ids asked for, in order, once each (``job=a,b`` is taken as ``job=a&job=b`` too)."""
    ids: list[str] = []
    for value in values:
        for part in value.split(","):
            if part.strip() and part.strip() not in ids:
                ids.append(part.strip())
    return ids


@router.get("/compare")
def compare_page(request: Request, who: Who, service: Jobs, files: Files,
                 job: Annotated[list[str] | None, Query()] = None):
    ids = job_ids(job or [])
    if not ids:
        return render(request, who, "compare.html", jobs=[], problem=None, min_jobs=MIN_JOBS, max_jobs=MAX_JOBS)
    if not MIN_JOBS <= len(ids) <= MAX_JOBS:
        return render(request, who, "compare.html", status_code=400, jobs=[], min_jobs=MIN_JOBS, max_jobs=MAX_JOBS,
                      problem=f"Compare takes {MIN_JOBS} to {MAX_JOBS} jobs (parameter job); {len(ids)} "
                              f"{'was' if len(ids) == 1 else 'were'} given.")
    jobs: list[FineTuningJob] = []
    for job_id in ids:
        try:
            jobs.append(service.retrieve(who.org, job_id))
        except APIError as exc:  # unknown, or another organisation's: "not found", as in the API
            return render(request, who, "compare.html", status_code=exc.status, jobs=[], min_jobs=MIN_JOBS,
                          max_jobs=MAX_JOBS, problem=f"Parameter job: {exc.message}")
    rows = settings(jobs, [_outcome(service, who.org, j) for j in jobs], _file_names(files, who.org, jobs))
    return render(request, who, "compare.html", jobs=jobs, problem=None, min_jobs=MIN_JOBS, max_jobs=MAX_JOBS,
                  rows=rows, differing=[r for r in rows if r["differs"]],
                  evaluations=side_by_side(request, who.org, jobs))


# ---- settings -------------------------------------------------------------------------------------
def _file_names(files, org: str, jobs: list[FineTuningJob]) -> dict[str, str]:
    return {file_id: file_name(files, org, file_id) or "(deleted)"
            for file_id in {f for j in jobs for f in (j.training_file, j.validation_file) if f}}


def _outcome(service, org: str, job: FineTuningJob) -> dict[str, Any]:
    """The last training and validation loss the job reported, from its newest events (a page at a
    time: validation may come only at the end of each epoch, many steps back)."""
    found: dict[str, Any] = {}
    after = None
    for _ in range(EVENT_PAGES):
        events, more = service.events(org, job.id, after, EVENT_PAGE)
        for event in events:  # newest first
            data = event.data or {}
            for field in ("train_loss", "valid_loss"):
                if event.type == "metrics" and field in data and field not in found:
                    found[field] = data[field]
        if len(found) == 2 or not more:
            break
        after = events[-1].id
    return found


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)  # as the job page shows it (a learning_rate_multiplier of 1.0 is "1.0")


def settings(jobs: list[FineTuningJob], outcomes: list[dict], names: dict[str, str]) -> list[dict]:
    """The settings table: ``{"name", "values" (one text per job), "differs"}`` per row."""
    def file(file_id: str | None) -> str:
        return f"{names.get(file_id, '(deleted)')} ({file_id})" if file_id else "—"

    def hyperparameters(job: FineTuningJob) -> dict:
        return job.method.get(job.method["type"], {}).get("hyperparameters", {})

    columns: list[tuple[str, list[Any]]] = [
        ("status", [j.status for j in jobs]),
        ("base model", [j.model for j in jobs]),
        ("method", [j.method["type"] for j in jobs]),
        ("suffix", [j.user_provided_suffix for j in jobs]),
        ("seed", [j.seed for j in jobs]),
    ]
    hp_names: list[str] = []
    for job in jobs:
        hp_names += [name for name in hyperparameters(job) if name not in hp_names]
    columns += [(name, [hyperparameters(j).get(name) for j in jobs]) for name in hp_names]
    columns += [
        ("training file", [file(j.training_file) for j in jobs]),
        ("validation file", [file(j.validation_file) for j in jobs]),
        ("trained tokens", [number(j.trained_tokens) for j in jobs]),
        ("final training loss", [_loss(o.get("train_loss")) for o in outcomes]),
        ("final validation loss", [_loss(o.get("valid_loss")) for o in outcomes]),
        ("fine-tuned model", [j.fine_tuned_model for j in jobs]),
        ("created", [utc(j.created_at) for j in jobs]),
    ]
    keys: list[str] = []
    for job in jobs:
        keys += [key for key in (job.metadata or {}) if key not in keys]
    columns += [(f"metadata {key}", [(j.metadata or {}).get(key) for j in jobs]) for key in keys]
    rows = []
    for name, values in columns:
        texts = [_text(v) for v in values]
        rows.append({"name": name, "values": texts, "differs": len(set(texts)) > 1 and name not in ALWAYS_DIFFER})
    return rows


def _loss(value: Any) -> str | None:
    return number(value) if isinstance(value, (int, float)) else None


# ---- evaluations side by side ---------------------------------------------------------------------
def side_by_side(request: Request, org: str, jobs: list[FineTuningJob]) -> list[dict]:
    """The evaluations that include these jobs' fine-tuned models, newest first, each as
    ``{"id", "data_name", "figures": [(figure name, [text per job])]}``: the report's own headline figures
    (score with its 95% CI, latency p50, cost per 1,000 requests), one column per job."""
    models = [j.fine_tuned_model for j in jobs if j.fine_tuned_model]
    if not models:
        return []
    shown = []
    for evaluation in request.app.state.evaluations.for_models(org, models):
        by_model = {f.model: f for f in evaluation.figures}
        per_job = [by_model.get(j.fine_tuned_model) if j.fine_tuned_model else None for j in jobs]
        rows = [(_score_name(per_job), [f"{f.score:.3f} [{f.ci95[0]:.3f}, {f.ci95[1]:.3f}]" if f else "—"
                                        for f in per_job]),
                ("latency p50", [f"{f.latency_p50_s:.2f} s" if f and f.latency_p50_s is not None else "—"
                                 for f in per_job]),
                ("cost / 1,000 requests", [f"${f.cost_per_1000:.4f} ({f.cost_basis})" if f else "—"
                                           for f in per_job])]
        shown.append({"id": evaluation.id, "data_name": evaluation.data_name, "figures": rows})
    return shown


def _score_name(figures: list) -> str:
    graders = sorted({f.grader for f in figures if f})
    return f"{' / '.join(graders)} (95% CI)"
