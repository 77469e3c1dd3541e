"""The batch runner: answers the requests of ``/v1/batches`` in the serving process, on its engine.

It lives where the engine lives (the API process), not in ``selftune worker``: its requests go through
the same :class:`ChatService` / :class:`ResponseService` calls as interactive ones, so the engine's
continuous batching serves them together. It stays behind the others: it keeps at most
``concurrency`` requests in flight, sends none while an interactive request waits for the engine, and
none while a fine-tuning job trains on this machine (both compete for the same cores).

Durability: each answer is written, once, in the transaction that counts it (a conditional update of a
``pending`` row); a batch whose runner dies (``kill -9``) keeps its heartbeat stale and is taken over,
and only its unanswered requests run again. Nothing reaches a client before the output file is written,
so no request is answered twice. The files are written when the batch ends (hosted line format).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import func, or_, select, update
from starlette.concurrency import run_in_threadpool

from selftune.api.batches.lines import BadInput, read_lines
from selftune.api.batches.protocol import ACTIVE, RESPONSES_ENDPOINT, BatchStatus, RequestStatus
from selftune.api.batches.service import enter
from selftune.api.chat.protocol import ChatCompletionRequest
from selftune.api.chat.service import ChatService
from selftune.api.errors import APIError, bad_request, invalid_value
from selftune.api.responses.protocol import ResponseRequest
from selftune.api.responses.service import ResponseService
from selftune.jobs.lifecycle import JobStatus
from selftune.store.blobs import BlobStore
from selftune.store.db import Database, DatabaseBusy
from selftune.store.tables import BatchRequestRow, BatchRow, FileRow, JobRow, new_id, now

log = logging.getLogger(__name__)
IDLE_SECONDS = 1.0  # between looks for work when there is none
HOUSEKEEPING_SECONDS = 2.0  # heartbeat, cancel and expiry checks, new batches validated, while answering
RETRY_SECONDS = 1.0  # after a busy engine (429) or a busy database
RUNNABLE = (BatchStatus.IN_PROGRESS, BatchStatus.FINALIZING, BatchStatus.CANCELLING)  # validated, not over
ROWS_PER_INSERT = 1000
ERRORS_SHOWN = 10  # malformed lines listed in a failed batch's errors
RETRYABLE = (429, 503)  # a full waiting room, a shutdown: the request runs later, it has not failed


class BatchRunner:
    def __init__(self, *, db: Database, blobs: BlobStore, chat: ChatService, responses: ResponseService,
                 lease_seconds: float, concurrency: int):
        self.db, self.blobs, self.chat, self.responses = db, blobs, chat, responses
        self.lease_seconds, self.concurrency = lease_seconds, concurrency
        self.host = socket.gethostname()
        self.id = f"{self.host}/{os.getpid()}/{new_id('')[:6]}"
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._flight: dict[int, asyncio.Task] = {}  # request pk -> its answer being made

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Run in the current event loop (the server's), until :meth:`stop`."""
        self._task = asyncio.get_running_loop().create_task(self._run_forever(), name="selftune-batches")

    def stop(self) -> None:
        """Stop now: answers in flight are dropped unrecorded (their requests stay pending and run again
        after the restart), so a shutdown never records a cut-short answer as the request's result."""
        self._stopping = True
        for task in list(self._flight.values()):
            task.cancel()
        if self._task is not None:
            self._task.cancel()

    async def _run_forever(self) -> None:
        log.info("batch runner %s started (%d requests in flight at most)", self.id, self.concurrency)
        while not self._stopping:
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad look (a DB hiccup) must not end the runner
                log.exception("batch runner tick failed")
                worked = False
            if not worked:
                await asyncio.sleep(IDLE_SECONDS)

    async def run_once(self) -> bool:
        """Validate the new batches, then take one batch with work left and carry it as far as it goes.
        False when there was nothing to do."""
        validated = await run_in_threadpool(self._validate_waiting)
        batch_id = await run_in_threadpool(self._claim)
        if batch_id is None:
            return validated
        status = await run_in_threadpool(self._status, batch_id)
        if status == BatchStatus.IN_PROGRESS:
            status = await self._answer(batch_id)
        if status is not None and status != BatchStatus.IN_PROGRESS:
            await run_in_threadpool(self._finish, batch_id, status)
        return True

    # ---- claims ----------------------------------------------------------------------------------
    def _claimable(self):
        stale = time.time() - self.lease_seconds
        return or_(BatchRow.runner.is_(None), BatchRow.runner == self.id, BatchRow.heartbeat_at < stale)

    def _take(self, session, batch_id: str) -> bool:
        """The conditional UPDATE only one runner can win (on every database)."""
        taken = session.execute(update(BatchRow).where(BatchRow.id == batch_id, self._claimable())
                                .values(runner=self.id, heartbeat_at=time.time()))
        return taken.rowcount == 1

    def _claim(self) -> str | None:
        """The oldest batch with answers to make or files to write whose runner is gone (or absent)."""
        with self.db.transaction() as session:
            query = (select(BatchRow.id).where(BatchRow.status.in_([s.value for s in RUNNABLE]),
                                               self._claimable()).order_by(BatchRow.pk).limit(1))
            batch_id = session.scalar(query.with_for_update(skip_locked=True))
            return batch_id if batch_id is not None and self._take(session, batch_id) else None

    def _heartbeat(self, batch_id: str) -> str | None:
        """Renew the claim; the batch's status, or None when another runner holds it now."""
        with self.db.transaction() as session:
            if session.execute(update(BatchRow).where(BatchRow.id == batch_id, BatchRow.runner == self.id)
                               .values(heartbeat_at=time.time())).rowcount != 1:
                return None
            row = session.scalar(select(BatchRow).where(BatchRow.id == batch_id))
            if row.status == BatchStatus.IN_PROGRESS and now() >= row.expires_at:
                return BatchStatus.EXPIRED
            return row.status

    def _status(self, batch_id: str) -> str:
        with self.db.transaction() as session:
            return session.scalar(select(BatchRow.status).where(BatchRow.id == batch_id))

    # ---- validating -> in_progress ---------------------------------------------------------------
    def _validate_waiting(self) -> bool:
        with self.db.transaction() as session:
            waiting = list(session.scalars(select(BatchRow.id).where(BatchRow.status == BatchStatus.VALIDATING,
                                                                      self._claimable()).order_by(BatchRow.pk)))
        for batch_id in waiting:
            self._validate(batch_id)
        return bool(waiting)

    def _validate(self, batch_id: str) -> None:
        """Read the input file into request rows, in one transaction: a crash leaves none, and the next
        runner reads the file again."""
        with self.db.transaction() as session:
            if not self._take(session, batch_id):
                return
            batch = session.scalar(select(BatchRow).where(BatchRow.id == batch_id))
            if batch.status != BatchStatus.VALIDATING:
                return
            source = session.scalar(select(FileRow).where(FileRow.id == batch.input_file_id))
            try:
                if source is None:
                    raise BadInput("file_not_found", f"The input file {batch.input_file_id} was deleted before "
                                                     "the batch started.")
                with session.begin_nested():  # a file refused halfway leaves no request rows
                    good, bad, models = self._insert_lines(session, batch, self.blobs.path(source.id))
            except BadInput as problem:
                self._fail(session, batch, [{"code": problem.code, "message": problem.message, "line": problem.line}])
                return
            if not good:  # nothing to answer: the batch fails, naming its first bad lines
                self._fail(session, batch, bad[:ERRORS_SHOWN] or [
                    {"code": "empty_file", "message": f"The input file {source.id} holds no request."}])
                return
            batch.total, batch.failed = good + len(bad), len(bad)
            batch.model = models.pop() if len(models) == 1 else None
            enter(batch, BatchStatus.IN_PROGRESS)
            batch.runner = None  # validated: any runner may answer it, in batch order
        log.info("batch %s: %d requests, %d malformed line(s)", batch_id, good, len(bad))

    def _insert_lines(self, session, batch: BatchRow, path: Path) -> tuple[int, list[dict], set]:
        good, bad, models, rows = 0, [], set(), []
        for line in read_lines(path, batch.endpoint):
            if line.error is None:
                good += 1
                models.add(str(line.body.get("model")))
            else:
                bad.append(line.error)
            rows.append(BatchRequestRow(
                id=new_id("batch_req_"), batch_id=batch.id, line=line.line, custom_id=line.custom_id,
                body=line.body, error=line.error,
                status=RequestStatus.PENDING if line.error is None else RequestStatus.FAILED))
            if len(rows) >= ROWS_PER_INSERT:
                session.add_all(rows)
                session.flush()
                rows = []
        session.add_all(rows)
        return good, bad, models

    @staticmethod
    def _fail(session, batch: BatchRow, errors: list[dict]) -> None:
        batch.errors = [{k: v for k, v in e.items() if v is not None} for e in errors]
        batch.runner = None
        enter(batch, BatchStatus.FAILED)
        log.info("batch %s failed: %s", batch.id, errors[0].get("message"))

    # ---- in_progress: the answers ----------------------------------------------------------------
    async def _answer(self, batch_id: str) -> str | None:
        """Answer the pending requests; the status the batch goes to next (finalizing, cancelled, expired),
        or None when this runner stops or loses the batch."""
        org, endpoint = await run_in_threadpool(self._owner, batch_id)
        last_look, status = 0.0, BatchStatus.IN_PROGRESS
        try:
            while not self._stopping:
                if time.monotonic() - last_look > HOUSEKEEPING_SECONDS:
                    last_look = time.monotonic()
                    status = await run_in_threadpool(self._heartbeat, batch_id)
                    if status != BatchStatus.IN_PROGRESS:
                        break
                    await run_in_threadpool(self._validate_waiting)
                    training = await run_in_threadpool(self._training_here)
                free = self.concurrency - len(self._flight)
                if free > 0 and not training and not self._engine_has_a_queue():
                    for pk, body in await run_in_threadpool(self._pending, batch_id, free):
                        self._flight[pk] = asyncio.create_task(self._one(batch_id, org, endpoint, pk, body))
                if not self._flight:
                    if await run_in_threadpool(self._left, batch_id) == 0:
                        return BatchStatus.FINALIZING
                    await asyncio.sleep(RETRY_SECONDS)  # waiting behind training or a busy engine
                    continue
                await asyncio.wait(list(self._flight.values()), timeout=HOUSEKEEPING_SECONDS,
                                   return_when=asyncio.FIRST_COMPLETED)
            return None if self._stopping else status
        finally:
            for task in list(self._flight.values()):
                task.cancel()
            self._flight.clear()

    def _owner(self, batch_id: str) -> tuple[str, str]:
        with self.db.transaction() as session:
            row = session.scalar(select(BatchRow).where(BatchRow.id == batch_id))
            return row.org, row.endpoint

    def _pending(self, batch_id: str, limit: int) -> list[tuple[int, dict]]:
        with self.db.transaction() as session:
            query = (select(BatchRequestRow.pk, BatchRequestRow.body)
                     .where(BatchRequestRow.batch_id == batch_id, BatchRequestRow.status == RequestStatus.PENDING,
                            BatchRequestRow.pk.not_in(list(self._flight)))
                     .order_by(BatchRequestRow.line).limit(limit))
            return [(pk, body) for pk, body in session.execute(query)]

    def _left(self, batch_id: str) -> int:
        with self.db.transaction() as session:
            return session.scalar(select(func.count()).select_from(BatchRequestRow).where(
                BatchRequestRow.batch_id == batch_id, BatchRequestRow.status == RequestStatus.PENDING))

    def _engine_has_a_queue(self) -> bool:
        """A request waits for the engine (an interactive one, or one of ours not started yet): send nothing
        more now, so an interactive request never queues behind more batch requests than already run."""
        return self.chat.admission.waiting > 0

    def _training_here(self) -> bool:
        """A fine-tuning job trains on this machine (its worker's id starts with the host name)."""
        query = select(JobRow.id).where(JobRow.status == JobStatus.RUNNING, JobRow.worker.startswith(f"{self.host}/"))
        with self.db.transaction() as session:
            return session.scalar(query.limit(1)) is not None

    async def _one(self, batch_id: str, org: str, endpoint: str, pk: int, body: dict) -> None:
        try:
            result = await self._call(org, endpoint, body)
            if result is not None:
                await run_in_threadpool(self._record, batch_id, pk, *result)
            else:
                await asyncio.sleep(RETRY_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the runner goes on; the request stays pending and runs again
            log.exception("batch %s: request %s could not be recorded", batch_id, pk)
            await asyncio.sleep(RETRY_SECONDS)
        finally:
            self._flight.pop(pk, None)

    async def _call(self, org: str, endpoint: str, body: dict) -> tuple[int, dict, int, int] | None:
        """(status code, response body, input tokens, output tokens), or None to try again later."""
        try:
            if body.get("stream"):
                raise bad_request("stream is not supported in a batch: each answer is written whole to the output "
                                  "file.", param="stream")
            if endpoint == RESPONSES_ENDPOINT:
                answer = await self.responses.create(org, _parsed(ResponseRequest, body))
                usage = answer.usage
                tokens = (usage.input_tokens, usage.output_tokens) if usage else (0, 0)
            else:
                answer = await self.chat.complete(org, _parsed(ChatCompletionRequest, body))
                tokens = (answer.usage.prompt_tokens, answer.usage.completion_tokens)
            return 200, answer.model_dump(mode="json"), *tokens
        except APIError as error:
            if error.status in RETRYABLE or self._stopping:
                return None
            return error.status, error.body(), 0, 0
        except DatabaseBusy:
            return None

    def _record(self, batch_id: str, pk: int, status_code: int, body: dict, input_tokens: int,
                output_tokens: int) -> None:
        """The answer and the batch's counts in one transaction, only if the request is still pending."""
        done = 200 <= status_code < 300
        response = {"status_code": status_code, "request_id": new_id("req_"), "body": body}
        with self.db.transaction() as session:
            written = session.execute(update(BatchRequestRow).where(
                BatchRequestRow.pk == pk, BatchRequestRow.status == RequestStatus.PENDING).values(
                status=RequestStatus.DONE if done else RequestStatus.FAILED, response=response))
            if written.rowcount != 1:
                return
            counts = {"completed": BatchRow.completed + 1} if done else {"failed": BatchRow.failed + 1}
            session.execute(update(BatchRow).where(BatchRow.id == batch_id).values(
                input_tokens=BatchRow.input_tokens + input_tokens,
                output_tokens=BatchRow.output_tokens + output_tokens, **counts))

    # ---- the end: output and error files -------------------------------------------------------
    def _finish(self, batch_id: str, status: str) -> None:
        """Write the files and end the batch: ``finalizing`` -> ``completed``; ``cancelling`` ->
        ``cancelled``; an in-progress batch past its window -> ``expired``. The requests left unanswered
        by a cancel or an expiry go into the error file with the reason, and count as failed."""
        final = {BatchStatus.FINALIZING: BatchStatus.COMPLETED, BatchStatus.CANCELLING: BatchStatus.CANCELLED,
                 BatchStatus.EXPIRED: BatchStatus.EXPIRED}.get(status)
        if final is None:
            return
        with self.db.transaction() as session:
            batch = session.scalar(select(BatchRow).where(BatchRow.id == batch_id, BatchRow.runner == self.id))
            if batch is None or batch.status not in ACTIVE:
                return
            if final == BatchStatus.COMPLETED and batch.status != BatchStatus.FINALIZING:
                enter(batch, BatchStatus.FINALIZING)
                session.flush()
            why = {BatchStatus.CANCELLED: ("batch_cancelled", "The batch was cancelled before this request ran."),
                   BatchStatus.EXPIRED: ("batch_expired", "This request could not be executed before the "
                                                          "completion window expired.")}.get(final)
            if why is not None:
                left = session.execute(update(BatchRequestRow).where(
                    BatchRequestRow.batch_id == batch_id, BatchRequestRow.status == RequestStatus.PENDING).values(
                    status=RequestStatus.FAILED, error={"code": why[0], "message": why[1]}))
                batch.failed += left.rowcount
            requests = session.scalars(select(BatchRequestRow).where(BatchRequestRow.batch_id == batch_id)
                                       .order_by(BatchRequestRow.line).execution_options(yield_per=1000))
            written = self._write_files(batch, requests)
            for file_row in written.values():
                session.add(file_row)
            batch.output_file_id = written["output"].id if "output" in written else None
            batch.error_file_id = written["error"].id if "error" in written else None
            enter(batch, final)
            batch.runner = None
        log.info("batch %s %s: %d answered, %d failed", batch_id, final, batch.completed, batch.failed)

    def _write_files(self, batch: BatchRow, requests) -> dict[str, FileRow]:
        """The output file (answers with a 2xx) and the error file (the rest), hosted line format, each
        streamed to a temporary file and stored as a blob; the rows are added by the caller's transaction
        (a crash before it leaves an unreferenced blob, never a half file)."""
        with tempfile.TemporaryDirectory() as tmp:
            paths = {"output": Path(tmp) / "output.jsonl", "error": Path(tmp) / "error.jsonl"}
            counts = {"output": 0, "error": 0}
            with open(paths["output"], "w") as output, open(paths["error"], "w") as errors:
                for request in requests:
                    kind = "output" if request.status == RequestStatus.DONE else "error"
                    line = {"id": request.id, "custom_id": request.custom_id, "response": request.response,
                            "error": request.error}
                    (output if kind == "output" else errors).write(json.dumps(line, ensure_ascii=False) + "\n")
                    counts[kind] += 1
            rows = {}
            for kind, path in paths.items():
                if counts[kind]:
                    file_id = new_id("file-")
                    size, sha256 = self.blobs.put_file(file_id, path)
                    created = now()
                    rows[kind] = FileRow(id=file_id, org=batch.org, filename=f"{batch.id}_{kind}.jsonl",
                                         purpose="batch_output", bytes=size, sha256=sha256, status="processed",
                                         created_at=created, expires_at=created + batch.output_expires_after
                                         if batch.output_expires_after else None)
            return rows


def _parsed(model, body: dict):
    """The request body as the endpoint's request model, or the 400 the endpoint itself would answer."""
    try:
        return model.model_validate(body)
    except ValidationError as problem:
        raise invalid_value(problem.errors()) from None
