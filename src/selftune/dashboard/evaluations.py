"""The Evaluations pages: the organisation's ``selftune eval`` runs with their headline figures, one
run's settings and progress, its stored HTML report, and a form that starts a run on this server.

Everything goes through :class:`selftune.api.evaluations.service.EvaluationService` (and the files,
models and jobs services for the form's choices), scoped to the viewer's organisation.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse

from selftune.api.errors import APIError
from selftune.api.evaluations.protocol import FINISHED
from selftune.api.evaluations.router import Evaluations
from selftune.api.files.router import Files
from selftune.api.fine_tuning.router import Jobs
from selftune.api.models.router import Models
from selftune.api.pagination import MAX_LIMIT
from selftune.dashboard.access import PostedBy, Who
from selftune.dashboard.render import render, secure
from selftune.evals.graders import names as grader_names
from selftune.jobs.lifecycle import JobStatus

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
JOBS_FOR_CHECKPOINTS = 20  # the form offers the checkpoints of the organisation's newest jobs
AUTO_GRADER = ""  # the form's default: evaluate() picks classification or normalized from the answers
# The stored report is self-contained: inline <style>, inline SVG figures (with style attributes), no
# scripts. Its own policy allows exactly that, and `sandbox` gives it an opaque origin besides.
REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
DOWNLOADS = {"report.json": "application/json", "results.jsonl": "application/x-ndjson"}


# ---- the list ------------------------------------------------------------------------------------
def _list_context(who, service, after: str) -> dict:
    evaluations, more, problem = [], False, None
    try:
        evaluations, more = service.list(who.org, after or None, PAGE_SIZE)
    except APIError as exc:
        problem = exc.message
    return {"evaluations": evaluations, "more": more, "after": after, "problem": problem,
            "active": any(e.status not in FINISHED for e in evaluations)}


@router.get("/evals")
def evaluations_page(request: Request, who: Who, service: Evaluations, after: str = ""):
    return render(request, who, "evals.html", **_list_context(who, service, after))


@router.get("/evals/fragments/list")
def evaluations_table(request: Request, who: Who, service: Evaluations, after: str = ""):
    return render(request, who, "_evals_table.html", **_list_context(who, service, after))


# ---- start one -----------------------------------------------------------------------------------
class EvalForm:
    """The form's fields as posted (strings), kept to show them again beside the problems."""

    def __init__(self, data_file: str = "", few_shot_file: str = "", models: list[str] | None = None,
                 few_shot: str = "0", grader: str = AUTO_GRADER, grader_argument: str = "", limit: str = ""):
        self.data_file, self.few_shot_file, self.models = data_file, few_shot_file, models or []
        self.few_shot, self.grader, self.grader_argument, self.limit = few_shot, grader, grader_argument, limit


def _choices(who, files, models, jobs) -> dict:
    """What the form offers: the organisation's checked fine-tune files, and every model it may evaluate."""
    uploaded, _ = files.list(who.org, "fine-tune", None, MAX_LIMIT, "desc")
    offered = models.list(who.org)
    base = [m.id for m in offered if not m.id.startswith("ft:")]
    tuned = [m.id for m in offered if m.id.startswith("ft:")]
    checkpoints = []
    recent, _ = jobs.list(who.org, None, JOBS_FOR_CHECKPOINTS, {}, statuses=[JobStatus.SUCCEEDED])
    for job in recent:
        listed, _ = jobs.checkpoints(who.org, job.id, None, MAX_LIMIT)
        checkpoints += [c.fine_tuned_model_checkpoint for c in listed
                        if c.fine_tuned_model_checkpoint not in tuned]
    return {"files": [f for f in uploaded if f.status == "processed"], "base_models": base,
            "tuned_models": tuned, "checkpoints": checkpoints, "graders": grader_names()}


def _new_form(request, who, files, models, jobs, form: EvalForm, problems: list[str], status_code: int = 200):
    return render(request, who, "eval_new.html", status_code=status_code, form=form, problems=problems,
                  limit_max=MAX_LIMIT, **_choices(who, files, models, jobs))


@router.get("/evals/new")
def new_evaluation_page(request: Request, who: Who, files: Files, models: Models, jobs: Jobs):
    return _new_form(request, who, files, models, jobs, EvalForm(), [])


def _integer(text: str, field: str, minimum: int, problems: list[str]) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        problems.append(f"{field}: {text!r} is not a whole number.")
        return None
    if value < minimum:
        problems.append(f"{field}: must be at least {minimum}.")
        return None
    return value


def _own_base_url(request: Request) -> str:
    """This server's API, as the address the request reached (the listening socket, not the Host header,
    so a request can't point the run and its key elsewhere)."""
    server = request.scope.get("server")
    if server and server[0] and server[1]:
        host, port = server
        host = f"[{host}]" if ":" in host else host
        return f"{request.url.scheme}://{host}:{port}/v1"
    return str(request.base_url).rstrip("/") + "/v1"


@router.post("/evals/new")
async def start_evaluation(request: Request, who: PostedBy, service: Evaluations, files: Files, models: Models,
                           jobs: Jobs):
    """Check the choices (each problem names its field), start the run, go to its page."""
    posted = await request.form()
    form = EvalForm(data_file=str(posted.get("data_file") or ""), few_shot_file=str(posted.get("few_shot_file") or ""),
                    models=[str(m) for m in posted.getlist("models")], few_shot=str(posted.get("few_shot") or "0"),
                    grader=str(posted.get("grader") or AUTO_GRADER),
                    grader_argument=str(posted.get("grader_argument") or "").strip(),
                    limit=str(posted.get("limit") or ""))
    choices = _choices(who, files, models, jobs)
    problems: list[str] = []
    file_names = {f.id: f.filename for f in choices["files"]}
    if form.data_file not in file_names:
        problems.append("Data file: choose one of your checked fine-tune files.")
    if form.few_shot_file and form.few_shot_file not in file_names:
        problems.append("Few-shot source file: choose one of your checked fine-tune files, or none.")
    if form.few_shot_file and form.few_shot_file == form.data_file:
        problems.append("Few-shot source file: must differ from the data file (examples never come from the "
                        "test set).")
    offered = set(choices["base_models"]) | set(choices["tuned_models"]) | set(choices["checkpoints"])
    if not form.models:
        problems.append("Models: tick at least one model.")
    unknown = [m for m in form.models if m not in offered]
    if unknown:
        problems.append(f"Models: {', '.join(unknown)} is not one of your models.")
    few_shot = _integer(form.few_shot, "Few-shot count", 0, problems) or 0
    if few_shot and not form.few_shot_file:
        problems.append("Few-shot count: needs a few-shot source file to take the examples from.")
    limit = _integer(form.limit, "Limit", 1, problems)
    if form.grader and form.grader not in choices["graders"]:
        problems.append(f"Grader: {form.grader!r} is not one of {', '.join(choices['graders'])}.")
    if problems:
        return _new_form(request, who, files, models, jobs, form, problems, status_code=400)
    grader = f"{form.grader}:{form.grader_argument}" if form.grader and form.grader_argument else form.grader
    try:
        data_path, data_name = files.content_path(who.org, form.data_file)
        few_path, few_name = files.content_path(who.org, form.few_shot_file) if form.few_shot_file else (None, None)
        evaluation = service.start(who.org, base_url=_own_base_url(request), data=data_path, data_name=data_name,
                                   models=form.models, few_shot=few_shot, few_shot_from=few_path,
                                   few_shot_name=few_name, graders=[grader] if grader else [], limit=limit)
    except APIError as exc:
        field = {"few_shot": "Few-shot count", "limit": "Limit", "graders": "Grader", "models": "Models"}
        named = field.get((exc.param or "").split(".")[0], "Settings")
        return _new_form(request, who, files, models, jobs, form, [f"{named}: {exc.message}"], status_code=400)
    return secure(RedirectResponse(f"/evals/{evaluation.id}", status_code=303))


# ---- one evaluation ------------------------------------------------------------------------------
def _one(request, who, service, eval_id: str, name: str, **context):
    try:
        evaluation = service.retrieve(who.org, eval_id)
    except APIError as exc:
        if name.startswith("_"):
            return render(request, who, "_gone.html", message=exc.message)
        return render(request, who, "error.html", status_code=exc.status, message=exc.message)
    return render(request, who, name, evaluation=evaluation, active=evaluation.status not in FINISHED,
                  settings=_settings(evaluation.config), **context)


def _settings(config: dict) -> list[tuple[str, str]]:
    """The run's settings worth showing, by their EvalConfig descriptions' short names."""
    shown = [("Data file", config.get("data_name")), ("Few-shot count", config.get("few_shot")),
             ("Few-shot source file", config.get("few_shot_name")),
             ("Graders", ", ".join(config.get("graders") or []) or "automatic"),
             ("Limit", config.get("limit")), ("Seed", config.get("seed")),
             ("Endpoint", config.get("base_url")), ("Concurrency", config.get("concurrency"))]
    return [(name, "—" if value is None else str(value)) for name, value in shown]


@router.get("/evals/{eval_id}")
def evaluation_page(request: Request, eval_id: str, who: Who, service: Evaluations):
    return _one(request, who, service, eval_id, "eval.html")


@router.get("/evals/{eval_id}/status")
def evaluation_status(request: Request, eval_id: str, who: Who, service: Evaluations):
    return _one(request, who, service, eval_id, "_eval_status.html")


@router.get("/evals/{eval_id}/report.html")
def evaluation_report(request: Request, eval_id: str, who: Who, service: Evaluations):
    """The stored report, as written: self-contained, under its own policy (no scripts at all)."""
    try:
        path = service.report_path(who.org, eval_id)
    except APIError as exc:
        return render(request, who, "error.html", status_code=exc.status, message=exc.message)
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=REPORT_HEADERS)


@router.get("/evals/{eval_id}/{name}")
def evaluation_download(request: Request, eval_id: str, name: str, who: Who, service: Evaluations):
    """report.json and results.jsonl, downloaded with the session."""
    if name not in DOWNLOADS:
        return render(request, who, "error.html", status_code=404, message=f"No such report file: {name!r}")
    try:
        path = service.report_path(who.org, eval_id, name)
    except APIError as exc:
        return render(request, who, "error.html", status_code=exc.status, message=exc.message)
    return secure(FileResponse(path, media_type=DOWNLOADS[name], filename=f"{eval_id}-{name}"))


@router.post("/evals/{eval_id}/delete")
def delete_evaluation(request: Request, eval_id: str, who: PostedBy, service: Evaluations):
    try:
        service.delete(who.org, eval_id)
    except APIError as exc:
        return render(request, who, "error.html", status_code=exc.status, message=exc.message)
    return secure(RedirectResponse("/evals", status_code=303))

