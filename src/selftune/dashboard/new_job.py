"""The New job page at ``/new``: upload a file, see its problems or its token statistics, start a job.

Every step goes through what the API uses, so the page can neither accept nor refuse anything the API
would not: the upload is :meth:`FileService.create` (same size limit, purpose ``fine-tune``), the
problems are stage 1's :func:`selftune.data.check` run on the stored bytes (the file service keeps only
the first few as text), the statistics are :func:`selftune.data.stats.stats` (what ``selftune data
stats`` prints), and Start builds the API's own :class:`JobCreateRequest` and calls
:meth:`JobService.create`, whose refusals are shown on the form next to the field they name.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from selftune.api.errors import APIError, bad_request, invalid_value
from selftune.api.files.protocol import FileObject
from selftune.api.files.router import MULTIPART_OVERHEAD, Files
from selftune.api.fine_tuning.protocol import JobCreateRequest
from selftune.api.fine_tuning.router import Jobs
from selftune.dashboard.access import PostedBy, Who
from selftune.dashboard.render import render, secure
from selftune.data.problems import Report
from selftune.models.catalog import base_models
from selftune.train.methods import AUTO, HYPERPARAMETERS, METHODS, Method, hyperparameter_problem, methods_taking

router = APIRouter(include_in_schema=False)
PURPOSE = "fine-tune"
PROBLEMS_SHOWN = 100  # per kind (errors, warnings); the rest are counted ("and N more")
STATS_MAX_BYTES = 50 * 1024**2  # bigger files are measured with `selftune data stats`, not in the server
VALIDATION_CHOICES = 100  # the newest processed files offered as the validation file
_measuring = threading.Lock()  # one tokenisation / speed measurement at a time: the server keeps serving


# ---- the form -------------------------------------------------------------------------------------
@dataclass
class JobForm:
    """What the Start form holds, as typed (strings), so a refused form comes back as it was sent."""

    model: str = ""
    method: str = ""
    hyperparameters: dict[str, str] = field(default_factory=dict)
    suffix: str = ""
    validation_file: str = ""
    seed: str = ""
    metadata: str = ""

    @classmethod
    def from_form(cls, form) -> JobForm:
        text = {name: str(form.get(name) or "") for name in
                ("model", "method", "suffix", "validation_file", "seed", "metadata")}
        hyperparameters = {name: str(form[f"hp_{name}"]) for name in HYPERPARAMETERS if f"hp_{name}" in form}
        return cls(hyperparameters=hyperparameters, **text)

    def request(self, training_file: str, validation_file: str | None) -> JobCreateRequest:
        """The API's request for this form; a value that can't be parsed is refused as the API would."""
        method = self.method or Method.SUPERVISED
        given = {}
        for name, text in self.hyperparameters.items():
            text = text.strip()
            if text.lower() in ("", AUTO):
                continue  # auto: left out, as a client leaves it out
            value = _number(text)
            if value is None:
                param = f"method.{method}.hyperparameters.{name}"
                raise bad_request(f"Invalid {param}: {hyperparameter_problem(name, text)}.", param=param)
            given[name] = value
        body = {"model": self.model, "training_file": training_file, "validation_file": validation_file,
                "method": {"type": method, method: {"hyperparameters": given}},
                "suffix": self.suffix.strip() or None, "seed": self.seed.strip() or None,
                "metadata": _metadata(self.metadata)}
        try:
            return JobCreateRequest.model_validate(body)
        except ValidationError as exc:
            raise invalid_value(exc.errors()) from None


def _number(text: str) -> int | float | None:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None


def _metadata(text: str) -> dict[str, str] | None:
    pairs = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if "=" not in line:
            raise bad_request(f"metadata: each line is key=value (e.g. task=cards), not {line.strip()!r}.",
                              param="metadata")
        key, _, value = line.partition("=")
        pairs[key.strip()] = value.strip()
    return pairs or None


def field_of(param: str | None) -> str | None:
    """The form field an API error's ``param`` names: ``method.dpo.hyperparameters.beta`` -> ``hp_beta``."""
    if not param:
        return None
    parts = param.split(".")
    if "hyperparameters" in parts[:-1]:
        return f"hp_{parts[-1]}"
    if parts[0] == "method":
        return "method"
    return parts[0]


# ---- what the page shows --------------------------------------------------------------------------
@dataclass
class Checked:
    """A file of the viewer's, and stage 1's report on its stored bytes (None: it could not be read)."""

    file: FileObject
    report: Report | None
    problem: str | None = None


def check_file(files, org: str, file_id: str) -> Checked:
    """Stage 1's full check of a stored file (raises the service's 404 for another organisation's)."""
    from selftune.data import check

    file = files.retrieve(org, file_id)
    if file.purpose != PURPOSE:
        return Checked(file, None, f"This file has purpose {file.purpose!r}; a job trains on {PURPOSE!r} files.")
    path, _ = files.content_path(org, file_id)
    try:
        return Checked(file, check(path, max_problems=PROBLEMS_SHOWN))
    except Exception as exc:  # noqa: BLE001 - an unreadable upload is the file's problem, shown as such
        return Checked(file, None, f"The file could not be read: {exc}")


def method_for(report: Report | None) -> str:
    """The method that trains on the format the check found (a preference file: dpo)."""
    purpose = report.purpose if report else None
    return next((m.value for m, spec in METHODS.items() if spec.file_format == purpose), Method.SUPERVISED.value)


def _models() -> list[dict]:
    return [{"id": m.id, "alias_of": m.alias_of} for m in base_models().values()]


def _default_model(wanted: str | None) -> str:
    models = base_models()
    return wanted if wanted in models else next(iter(models), "")


def _validation_choices(files, org: str, training_file: str, selected: str) -> list[FileObject]:
    """The viewer's processed fine-tune files (never another organisation's), plus the one selected."""
    listed, _ = files.list(org, PURPOSE, None, VALIDATION_CHOICES, "desc")
    choices = [f for f in listed if f.status == "processed" and f.id != training_file]
    if selected and selected not in {f.id for f in choices}:
        try:
            choices.insert(0, files.retrieve(org, selected))
        except APIError:
            pass
    return choices


def _page(request: Request, who, files, *, checked: Checked | None = None, form: JobForm | None = None,
          problem: APIError | None = None, upload_problem: str | None = None,
          validation_checked: Checked | None = None, status_code: int = 200):
    context = {"checked": checked, "form": form, "problem": problem, "problem_field": field_of(problem.param)
               if problem else None, "upload_problem": upload_problem, "validation_checked": validation_checked,
               "models": _models(), "methods": [m.value for m in METHODS],
               "hyperparameters": {name: [m.value for m in methods_taking(name)] for name in HYPERPARAMETERS},
               "method_hyperparameters": {m.value: list(spec.hyperparameters) for m, spec in METHODS.items()},
               "format_names": {spec.file_format: spec.file_format_name for spec in METHODS.values()},
               "max_bytes": files.max_upload_bytes, "auto": AUTO, "validation_choices": []}
    if checked is not None and checked.report is not None and checked.report.valid and form is not None:
        context["validation_choices"] = _validation_choices(files, who.org, checked.file.id, form.validation_file)
    return render(request, who, "new_job.html", status_code=status_code, **context)


@router.get("/new")
def new_job_page(request: Request, who: Who, files: Files, file: str = "", model: str = ""):
    """The upload form; with ``file``, that file's problems or its statistics and the Start form."""
    if not file:
        return _page(request, who, files, form=JobForm(model=_default_model(model)))
    try:
        checked = check_file(files, who.org, file)
    except APIError as exc:
        return _page(request, who, files, upload_problem=exc.message, status_code=exc.status,
                     form=JobForm(model=_default_model(model)))
    return _page(request, who, files, checked=checked,
                 form=JobForm(model=_default_model(model), method=method_for(checked.report)))


@router.get("/new/stats")
def new_job_stats(request: Request, who: Who, files: Files, file: str = "", model: str = "", epochs: str = ""):
    """Token statistics and the time estimate for ``model`` (and ``epochs``, when a valid n_epochs is
    typed; else the auto rule's): a fragment the page loads after it shows, since a model's first
    tokenizer load or speed measurement takes seconds (this runs on a worker thread)."""
    from selftune.data.stats import stats
    from selftune.errors import SelftuneError

    chosen = _number(epochs.strip())
    n_epochs = int(chosen) if chosen is not None and hyperparameter_problem("n_epochs", chosen) is None else None
    context = {"result": None, "message": None, "file_id": file, "model": model, "epochs": n_epochs}
    base = base_models().get(model)
    try:
        stored = files.retrieve(who.org, file)
    except APIError as exc:
        return render(request, who, "_new_job_stats.html", **context | {"message": exc.message})
    if base is None:
        context["message"] = f"Model {model!r} is not available for fine-tuning."
    elif stored.bytes > STATS_MAX_BYTES:
        context["message"] = (f"This file is larger than {STATS_MAX_BYTES // 1024**2} MB: it is not measured here. "
                              "Run `selftune data stats FILE --model MODEL` for its statistics.")
    else:
        path, _ = files.content_path(who.org, file)
        try:
            with _measuring:
                context["result"] = stats(path, base.source, epochs=n_epochs)
        except SelftuneError as exc:
            context["message"] = f"Not measured: {exc}"
    return render(request, who, "_new_job_stats.html", **context)


# ---- upload and start -----------------------------------------------------------------------------
def within_limit(request: Request, files: Files) -> None:
    """Refuse an upload bigger than the API's limit before its body is read (as ``POST /v1/files``)."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > files.max_upload_bytes + MULTIPART_OVERHEAD:
        raise APIError(413, f"File is larger than the limit of {files.max_upload_bytes:,} bytes.",
                       param="file", code="file_too_large")


WithinLimit = Annotated[None, Depends(within_limit)]


def _upload(form, name: str) -> UploadFile | None:
    upload = form.get(name)
    return upload if isinstance(upload, UploadFile) and upload.filename else None


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


@router.post("/new/upload")
async def new_job_upload(request: Request, _limit: WithinLimit, who: PostedBy, files: Files):
    """Create the dropped or chosen file as ``POST /v1/files`` would, then show it (``/new?file=``).
    The page's script asks for JSON (it follows the address itself); a plain form post is redirected."""
    form = await request.form()
    try:
        upload = _upload(form, "file")
        if upload is None:
            raise bad_request("Choose a file to upload.", param="file")
        created = await run_in_threadpool(files.create, who.org, upload.filename, PURPOSE, upload.file)
    except APIError as exc:
        if _wants_json(request):
            return secure(JSONResponse(exc.body(), status_code=exc.status))
        return await run_in_threadpool(_page, request, who, files, upload_problem=exc.message,
                                       status_code=exc.status,
                                       form=JobForm(model=_default_model(str(form.get("model") or ""))))
    finally:
        await form.close()
    model = str(form.get("model") or "")
    target = f"/new?file={created.id}" + (f"&model={model}" if model in base_models() else "")
    if _wants_json(request):
        return secure(JSONResponse({"id": created.id, "location": target}))
    return secure(RedirectResponse(target, status_code=303))


@router.post("/new")
async def new_job_start(request: Request, _limit: WithinLimit, who: PostedBy, files: Files, jobs: Jobs):
    """Start: the API's request from the form (and a validation file uploaded with it), then
    :meth:`JobService.create`; its refusal comes back on the form, next to the field it names."""
    form = await request.form()
    try:
        typed = JobForm.from_form(form)
        training_file = str(form.get("file") or "")
        try:
            checked = await run_in_threadpool(check_file, files, who.org, training_file)
        except APIError as exc:
            return await run_in_threadpool(_page, request, who, files, upload_problem=exc.message,
                                           status_code=exc.status, form=JobForm(model=_default_model(typed.model)))
        validation_checked = None
        try:
            upload = _upload(form, "validation_upload")
            if upload is not None:
                created = await run_in_threadpool(files.create, who.org, upload.filename, PURPOSE, upload.file)
                validation_checked = await run_in_threadpool(check_file, files, who.org, created.id)
                typed.validation_file = created.id
                report = validation_checked.report
                if report is None or not report.valid:
                    count = report.error_count if report else 1
                    raise bad_request(f"validation_file: the uploaded file {created.filename!r} has "
                                      f"{count:,} problem(s), listed below.", param="validation_file")
            request_body = typed.request(training_file, typed.validation_file or None)
            job = await run_in_threadpool(jobs.create, who.org, request_body)
        except APIError as exc:
            if validation_checked is not None and validation_checked.report and validation_checked.report.valid:
                validation_checked = None  # a good upload: it is now one of the choices, selected
            elif validation_checked is not None:
                typed.validation_file = ""
            return await run_in_threadpool(_page, request, who, files, checked=checked, form=typed, problem=exc,
                                           validation_checked=validation_checked, status_code=exc.status)
    finally:
        await form.close()
    return secure(RedirectResponse(f"/jobs/{job.id}", status_code=303))
