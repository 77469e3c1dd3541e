"""``create_app()``: the FastAPI application with its services, and (by default) an embedded worker.

Nothing here imports torch: the server starts in about a second, and training runs in child
processes of the worker.
"""

from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

import selftune
from selftune.api.auth import RunKeys
from selftune.api.batches.router import router as batches_router
from selftune.api.batches.runner import BatchRunner
from selftune.api.batches.service import BatchService
from selftune.api.chat.router import router as chat_router
from selftune.api.chat.service import ChatService
from selftune.api.chat.stored import StoredCompletions
from selftune.api.errors import install_handlers
from selftune.api.evaluations.router import router as evaluations_router
from selftune.api.evaluations.service import EvaluationService, reports_root
from selftune.api.files.router import router as files_router
from selftune.api.files.service import FileService
from selftune.api.fine_tuning.router import router as jobs_router
from selftune.api.fine_tuning.service import JobService
from selftune.api.models.router import router as models_router
from selftune.api.models.service import ModelService
from selftune.api.responses.router import router as responses_router
from selftune.api.responses.service import ResponseService
from selftune.api.responses.stored import StoredResponses
from selftune.api.uploads.router import router as uploads_router
from selftune.config import ServeWeights, Settings, get_settings
from selftune.dashboard import mount as mount_dashboard
from selftune.store.blobs import BlobStore
from selftune.store.db import Database

log = logging.getLogger(__name__)


def _serving_engine(settings: Settings):
    """The engine SELFTUNE_SERVE_ENGINE names (loads torch: only when the first request needs it)."""
    from selftune.serve.vllm_engine import vllm_usable

    kind = settings.serve_engine
    if kind == "vllm" or (kind == "auto" and vllm_usable()):
        from selftune.serve.vllm_engine import VLLMEngine

        log.info("serving with vLLM")
        if settings.serve_weights != ServeWeights.FULL:
            log.warning("SELFTUNE_SERVE_WEIGHTS=%s applies to the embedded engine only; vLLM serves full weights",
                        settings.serve_weights.value)
        return VLLMEngine(dtype=settings.serve_dtype, kv_tokens=settings.serve_kv_tokens,
                          max_adapters=settings.serve_max_adapters)
    from selftune.serve.embedded import EmbeddedEngine

    return EmbeddedEngine(dtype=settings.serve_dtype, kv_tokens=settings.serve_kv_tokens,
                          max_adapters=settings.serve_max_adapters, weights=settings.serve_weights)


def create_app(settings: Settings | None = None, embedded_worker: bool = True) -> FastAPI:
    settings = settings or get_settings()
    api_keys = settings.organisations()  # a malformed SELFTUNE_API_KEYS fails here, before serving

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        db = Database(settings.database)
        blobs = BlobStore(settings.blobs_dir)
        app.state.api_keys = api_keys
        app.state.run_keys = RunKeys() if api_keys is not None else None  # for evaluations started here
        app.state.files = FileService(db=db, blobs=blobs, max_upload_bytes=settings.max_upload_bytes)
        app.state.jobs = JobService(db=db)
        app.state.models = ModelService(db=db)
        app.state.chat = ChatService(db=db, engine_factory=lambda: _serving_engine(settings),
                                     stored=StoredCompletions(db), max_queued=settings.serve_max_queued)
        app.state.responses = ResponseService(chat=app.state.chat, stored=StoredResponses(db))
        app.state.evaluations = EvaluationService(db=db, root=reports_root(settings),
                                                  run_keys=app.state.run_keys)
        app.state.batches = BatchService(db=db)
        runner = app.state.batch_runner = BatchRunner(
            db=db, blobs=blobs, chat=app.state.chat, responses=app.state.responses,
            lease_seconds=settings.job_lease_seconds, concurrency=settings.batch_concurrency)
        runner.start()
        app.state.files.validate_pending()
        app.state.evaluations.fail_interrupted()
        worker = thread = None
        if embedded_worker:
            from selftune.jobs.worker import Worker

            worker = Worker.from_settings(settings, db=db, blobs=blobs)
            thread = worker.start_thread()
        try:
            yield
        finally:
            runner.stop()
            if worker is not None:
                worker.stop()
                thread.join()
            app.state.files.shutdown()
            app.state.evaluations.shutdown()
            app.state.chat.close()
            db.dispose()

    app = FastAPI(title="selftune", version=selftune.__version__, lifespan=lifespan,
                  description="Self-hosted, OpenAI-compatible fine-tuning",
                  generate_unique_id_function=_operation_id)
    install_handlers(app)
    app.include_router(files_router)
    app.include_router(uploads_router)
    app.include_router(jobs_router)
    app.include_router(models_router)
    app.include_router(chat_router)
    app.include_router(responses_router)
    app.include_router(batches_router)
    app.include_router(evaluations_router)
    mount_dashboard(app)  # the web UI at /, on the same services

    @app.get("/health", include_in_schema=False)
    def health() -> dict:
        return {"status": "ok", "version": selftune.__version__}

    app.openapi = lambda: _openapi(app)
    return app


def _operation_id(route: APIRoute) -> str:
    """The route's function name (``create_file``, ``retrieve_job``...): the ids the links name."""
    return route.name


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document, told the truth: a request that does not validate gets a 400 in the error shape
    (errors.install_handlers), never FastAPI's 422; and every /v1 route takes a bearer key."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation["responses"].pop("422", None)
        components = schema.setdefault("components", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        components["securitySchemes"] = {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "An API key of SELFTUNE_API_KEYS; in local mode (none configured) any key."}}
        schema["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema
