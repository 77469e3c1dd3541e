"""Evaluations: ``selftune eval`` runs kept in the store, so the dashboard can list them, show their
headline figures and open their reports, and runs started from the dashboard.

A finished run is recorded by copying its report files (``report.html``, ``report.json``,
``results.jsonl``) into a folder of its own under ``SELFTUNE_HOME/evals/<id>`` (renamed into place
whole, so a reader never sees half a report) and inserting a row with the figures the report gave.

A run started here (:meth:`EvaluationService.start`) evaluates against this very server, on one
background thread (runs queue behind each other: the models they call share this machine). In keyed
mode it authenticates with a run key (:class:`selftune.api.auth.RunKeys`) revoked when it ends.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select

from selftune.api.auth import LOCAL_ORG, RunKeys, org_for_key
from selftune.api.errors import APIError, bad_request, not_found
from selftune.api.evaluations.protocol import (
    FINISHED,
    EvalStatus,
    Evaluation,
    EvaluationDeleted,
    ModelFigures,
    Progress,
)
from selftune.api.owned import owned
from selftune.api.pagination import page
from selftune.config import Settings, get_settings
from selftune.errors import SelftuneError
from selftune.evals.config import EvalConfig
from selftune.evals.results import EvalReport
from selftune.store.atomic import atomic_directory
from selftune.store.db import Database
from selftune.store.tables import EvaluationRow, new_id, now

log = logging.getLogger(__name__)
REPORT_FILES = ("report.html", "report.json", "results.jsonl")  # what evaluate() writes into config.out
PROGRESS_EVERY_S = 0.5  # progress reaches the row at most this often (and once at the end of each model)
SECRET_FIELDS = ("api_key",)


def reports_root(settings: Settings) -> Path:
    """Where the evaluations' report folders live: ``SELFTUNE_HOME/evals/<id>``."""
    return settings.home.expanduser() / "evals"


def open_service(settings: Settings | None = None) -> EvaluationService:
    """The service on the store of ``settings`` (default: the environment's), for the command line."""
    settings = settings or get_settings()
    return EvaluationService(db=Database(settings.database), root=reports_root(settings))


def org_of_key(settings: Settings, api_key: str | None) -> str | None:
    """The organisation a run's API key belongs to in this store: ``local`` in local mode, else the key's
    organisation among SELFTUNE_API_KEYS, or None when it is none of them."""
    keys = settings.organisations()
    if keys is None:
        return LOCAL_ORG
    return org_for_key(keys, api_key) if api_key else None


def record_finished(config: EvalConfig, report: EvalReport, settings: Settings | None = None) -> Evaluation:
    """Record a run of ``selftune eval`` (or of the demo) in the store of SELFTUNE_HOME, under the
    organisation of the API key it used; raises SelftuneError saying why when it can't."""
    from selftune.evals.run import LOCAL_API_KEY

    settings = settings or get_settings()
    org = org_of_key(settings, config.api_key or LOCAL_API_KEY)
    if org is None:
        raise SelftuneError("its API key is none of SELFTUNE_API_KEYS, so it belongs to no organisation here")
    service = open_service(settings)
    try:
        return service.record(org, config, report, config.out)
    finally:
        service.db.dispose()


def dashboard_root(base_url: str | None) -> str:
    """The dashboard of the server an evaluation ran against (its base URL without ``/v1``), or of the
    default local server."""
    from selftune.config import LOCAL_BASE_URL

    url = (base_url or LOCAL_BASE_URL).rstrip("/")
    return url.removesuffix("/v1") + "/"


def figures(report: EvalReport) -> list[ModelFigures]:
    """Each model's headline figures, read from the report (its main grader, as its table shows)."""
    grader = report.grader
    return [ModelFigures(model=r.name, kind=r.kind, grader=grader, score=r.quality[grader].mean,
                         ci95=r.quality[grader].ci95, n=r.requests, errors=r.errors, latency_p50_s=r.latency_s.p50,
                         cost_per_1000=r.own_cost, cost_basis=r.cost_basis) for r in report.models]


def shown_config(config: EvalConfig, data_name: str | None = None, few_shot_name: str | None = None,
                 stored_files: bool = False) -> dict:
    """The settings kept with the run: everything but API keys, plus the names its files are shown by.
    ``stored_files``: its files are uploads in the store, whose paths are the server's business."""
    dump = config.model_dump(mode="json")
    dump.pop("out", None)  # the report folder is the row's report_dir
    if stored_files:
        dump["data"], dump["few_shot_from"] = data_name, few_shot_name
    for field in SECRET_FIELDS:
        dump.pop(field, None)
    for model in dump.get("models", []):
        for field in SECRET_FIELDS:
            model.pop(field, None)
    dump["data_name"] = data_name or Path(config.data).name
    dump["few_shot_name"] = few_shot_name or (Path(config.few_shot_from).name if config.few_shot_from else None)
    return dump


class EvaluationService:
    def __init__(self, *, db: Database, root: Path, run_keys: RunKeys | None = None):
        """``root``: the folder of report folders; ``run_keys``: set in keyed mode, for runs started here."""
        self.db, self.root, self.run_keys = db, Path(root), run_keys
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluation")

    # ---- record a finished run ---------------------------------------------------------------------
    def record(self, org: str, config: EvalConfig, report: EvalReport, out: Path,
               data_name: str | None = None) -> Evaluation:
        """Keep a finished run: copy its report files from ``out`` and insert its row."""
        eval_id = new_id("eval-")
        folder = self._folder(eval_id)
        with atomic_directory(folder) as tmp:
            for name in REPORT_FILES:
                if (Path(out) / name).is_file():
                    shutil.copyfile(Path(out) / name, tmp / name)
        total = report.examples * len(report.models)
        row = EvaluationRow(id=eval_id, org=org, created_at=now(), finished_at=now(), status=EvalStatus.SUCCEEDED,
                            config=shown_config(config, data_name), done=total, total=total,
                            figures=[f.model_dump(mode="json") for f in figures(report)], report_dir=str(folder))
        try:
            with self.db.transaction() as session:
                session.add(row)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return to_evaluation(row)

    # ---- read / delete -----------------------------------------------------------------------------
    def list(self, org: str, after: str | None, limit: int) -> tuple[list[Evaluation], bool]:
        with self.db.transaction() as session:
            query = select(EvaluationRow).where(EvaluationRow.org == org)
            rows, more = page(session, query, EvaluationRow, after, limit, kind="evaluation")
            return [to_evaluation(r) for r in rows], more

    def retrieve(self, org: str, eval_id: str) -> Evaluation:
        with self.db.transaction() as session:
            return to_evaluation(self._row(session, org, eval_id))

    def for_models(self, org: str, model_ids: Collection[str]) -> list[Evaluation]:
        """The organisation's evaluations that include any of ``model_ids``, newest first."""
        wanted = set(model_ids)
        with self.db.transaction() as session:
            rows = session.scalars(select(EvaluationRow).where(EvaluationRow.org == org)
                                   .order_by(EvaluationRow.pk.desc()))
            return [to_evaluation(r) for r in rows if wanted & set(_models(r))]

    def report_path(self, org: str, eval_id: str, name: str = "report.html") -> Path:
        """One of the run's report files; 404 while it runs, after it failed, or for another organisation."""
        if name not in REPORT_FILES:
            raise not_found("report file", name)
        with self.db.transaction() as session:
            row = self._row(session, org, eval_id)
        path = Path(row.report_dir) / name if row.report_dir else None
        if path is None or not path.is_file():
            raise not_found("evaluation report", eval_id)
        return path

    def delete(self, org: str, eval_id: str) -> EvaluationDeleted:
        with self.db.transaction() as session:
            row = self._row(session, org, eval_id)
            if row.status not in FINISHED:
                raise APIError(409, "This evaluation is still running; delete it once it has finished.",
                               code="evaluation_running")
            session.delete(row)
        if row.report_dir:  # after the commit: a crash in between leaves files, never a row without them
            shutil.rmtree(row.report_dir, ignore_errors=True)
        return EvaluationDeleted(id=eval_id, deleted=True)

    # ---- runs started here -------------------------------------------------------------------------
    def start(self, org: str, *, base_url: str, data: Path, data_name: str, models: list[str], few_shot: int = 0,
              few_shot_from: Path | None = None, few_shot_name: str | None = None, graders: list[str] = (),
              limit: int | None = None) -> Evaluation:
        """Queue an evaluation against this server (``base_url``: its own address); returns its row at once."""
        eval_id = new_id("eval-")
        folder = self._folder(eval_id)
        try:
            config = EvalConfig(data=data, models=models, few_shot=few_shot, few_shot_from=few_shot_from,
                                graders=list(graders), limit=limit, base_url=base_url, out=folder)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first.get("loc", ())) or None
            raise bad_request(str(first.get("msg", "invalid settings")).removeprefix("Value error, "),
                              param=param) from None
        row = EvaluationRow(id=eval_id, org=org, created_at=now(), status=EvalStatus.QUEUED, figures=[], done=0,
                            total=0, config=shown_config(config, data_name, few_shot_name, stored_files=True))
        with self.db.transaction() as session:
            session.add(row)
        self._runner.submit(self._run, org, eval_id, config)
        return to_evaluation(row)

    def _run(self, org: str, eval_id: str, config: EvalConfig) -> None:
        """On the runner thread: evaluate into a temporary folder renamed into place; any error fails the
        row with its message (the run's other rows and the server carry on)."""
        from selftune.evals.run import evaluate

        key = self.run_keys.issue(org) if self.run_keys is not None else "local"
        try:
            self._update(eval_id, status=EvalStatus.RUNNING)
            folder = Path(config.out)
            with atomic_directory(folder) as tmp:
                report = evaluate(config.model_copy(update={"out": tmp, "api_key": key}),
                                  self._progress(eval_id, len(config.models)))
                (tmp / "server.log").unlink(missing_ok=True)
            self._update(eval_id, status=EvalStatus.SUCCEEDED, finished_at=now(), report_dir=str(folder),
                         figures=[f.model_dump(mode="json") for f in figures(report)])
        except Exception as exc:  # noqa: BLE001 - any failure is the run's, reported on its row
            log.exception("evaluation %s failed", eval_id)
            message = str(exc) or type(exc).__name__
            self._update(eval_id, status=EvalStatus.FAILED, finished_at=now(), error=message[:2000])
        finally:
            if self.run_keys is not None:
                self.run_keys.revoke(key)

    def _progress(self, eval_id: str, n_models: int) -> Callable[[str, int], Callable[[int], None]]:
        """evaluate()'s progress hook: counts answered requests of all models, written to the row at most
        every PROGRESS_EVERY_S (the advance calls come from the request threads)."""
        lock = threading.Lock()
        state = {"done": 0, "total": 0, "written": 0.0}

        def start(_model: str, total: int) -> Callable[[int], None]:
            with lock:
                if not state["total"]:
                    state["total"] = total * n_models  # every model answers the same examples
                self._update(eval_id, done=state["done"], total=state["total"])
            remaining = [total]

            def advance(n: int) -> None:
                with lock:
                    state["done"] += n
                    remaining[0] -= n
                    if time.monotonic() - state["written"] >= PROGRESS_EVERY_S or remaining[0] <= 0:
                        state["written"] = time.monotonic()
                        self._update(eval_id, done=state["done"], total=state["total"])

            return advance

        return start

    def fail_interrupted(self) -> None:
        """At start-up: runs a previous server process left queued or running can no longer finish."""
        with self.db.transaction() as session:
            for row in session.scalars(select(EvaluationRow).where(
                    EvaluationRow.status.in_([EvalStatus.QUEUED, EvalStatus.RUNNING]))):
                row.status, row.finished_at = EvalStatus.FAILED, now()
                row.error = "The server stopped before this evaluation finished."

    def shutdown(self) -> None:
        self._runner.shutdown(wait=False, cancel_futures=True)

    # ---- helpers -----------------------------------------------------------------------------------
    def _folder(self, eval_id: str) -> Path:
        return self.root / eval_id  # ids are ours (new_id): letters and digits only

    def _update(self, eval_id: str, **fields) -> None:
        with self.db.transaction() as session:
            row = session.scalar(select(EvaluationRow).where(EvaluationRow.id == eval_id))
            if row is not None:
                for name, value in fields.items():
                    setattr(row, name, value)

    @staticmethod
    def _row(session, org: str, eval_id: str) -> EvaluationRow:
        return owned(session, EvaluationRow, org, eval_id, "evaluation")


def _models(row: EvaluationRow) -> list[str]:
    return [m["model"] if isinstance(m, dict) else m for m in row.config.get("models", [])]


def to_evaluation(row: EvaluationRow) -> Evaluation:
    return Evaluation(id=row.id, created_at=row.created_at, finished_at=row.finished_at, status=row.status,
                      data_name=row.config.get("data_name") or "", models=_models(row), config=row.config,
                      figures=[ModelFigures(**f) for f in row.figures or []],
                      progress=Progress(done=row.done, total=row.total), error=row.error,
                      has_report=bool(row.report_dir) and row.status == EvalStatus.SUCCEEDED)
