"""Chat requests through an endpoint's Batch API (``--batch``): the questions :func:`ask_all` would send
one by one, written to one file, run as one batch (hosted charges half for waiting), and read back.

What comes back is what :func:`ask_all` returns: a :class:`Reply` per request, in order, each failure a
value. A request in the error file, or absent from both files, is a Reply whose ``error`` says why (its
status code, or the batch's error code, or that the batch failed, expired or was cancelled), so a batch
that ends badly never loses the answers that did come back. A Reply's latency is None: in a batch a
request waits in a queue, so only the batch's wall time means anything.

One batch per call, for one model: the hosted API takes one model per batch file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from selftune.evals.requests import ChatRequest, Reply, ask_all, chat_body, reply_of

if TYPE_CHECKING:
    import openai
    from openai.types import Batch

log = logging.getLogger(__name__)
ENDPOINT = "/v1/chat/completions"
ENDED = ("completed", "failed", "expired", "cancelled")
POLL_SECONDS = 30.0  # the longest wait between two looks at the batch
FIRST_POLL_SECONDS, POLL_GROWTH = 0.5, 1.1  # looks start often and thin out: the batch's end is seen
# at most ~10% (and never more than POLL_SECONDS) after it happens, so its wall time stays a measurement
LOOKS_FAILED = 20  # looks in a row that fail (after the client's retries) before the batch is given up
ERROR = "BatchError: "  # how every failure of a batched request begins


def ask_all_batched(client: openai.OpenAI, model: str, requests: Sequence[ChatRequest], settings: dict[str, Any], *,
                    metadata: dict[str, str] | None = None, progress: Callable[[int], None] | None = None,
                    on_reply: Callable[[int, Reply], None] | None = None,
                    poll_seconds: float = POLL_SECONDS) -> list[Reply]:
    """Every request's reply, in order, from one batch of ``client``'s endpoint. ``progress(n)`` as the
    batch's request counts grow; ``on_reply(index, reply)`` for each reply once the batch has ended.

    Ctrl-C while waiting cancels the batch, waits for the cancel (Ctrl-C again leaves at once) and hands
    the answers that came back to ``on_reply`` before it propagates: what was paid for is kept."""
    import openai

    if not requests:
        return []
    shown = [0]

    def advance(batch: Batch) -> None:
        counts = batch.request_counts
        done = min(len(requests), counts.completed + counts.failed) if counts else 0
        if progress and done > shown[0]:
            progress(done - shown[0])
            shown[0] = done

    try:
        batch = _submit(client, model, requests, settings, metadata)
    except openai.APIError as exc:
        replies = [_failed(f"the batch could not be created: {type(exc).__name__}: {exc}")] * len(requests)
        return _hand_over(replies, progress, shown, on_reply)
    try:
        batch = _wait(client, batch, advance, poll_seconds)
    except Lost as lost:
        return _hand_over([_failed(str(lost))] * len(requests), progress, shown, on_reply)
    except KeyboardInterrupt:
        log.warning("cancelling batch %s; its answers so far are kept (Ctrl-C again to leave without them)",
                    batch.id)
        try:
            client.batches.cancel(batch.id)
        except openai.APIError as exc:  # it may have ended meanwhile: its answers are read all the same
            log.warning("batch %s could not be cancelled: %s", batch.id, exc)
        with contextlib.suppress(Lost):
            batch = _wait(client, batch, advance, poll_seconds)
            _hand_over(_collect(client, batch, len(requests)), progress, shown, on_reply)
        raise
    return _hand_over(_collect(client, batch, len(requests)), progress, shown, on_reply)


def send_all(client: openai.OpenAI, model: str, requests: Sequence[ChatRequest], settings: dict[str, Any], *,
             batch: bool, concurrency: int, metadata: dict[str, str] | None = None,
             progress: Callable[[int], None] | None = None,
             on_reply: Callable[[int, Reply], None] | None = None) -> list[Reply]:
    """The requests of eval, its judge and distill, the way their ``--batch`` says: one batch of the Batch
    API (``metadata`` on it), or :func:`ask_all` with ``concurrency`` in flight. The same replies either way."""
    if batch:
        return ask_all_batched(client, model, requests, settings, metadata=metadata, progress=progress,
                               on_reply=on_reply)
    return ask_all(client, model, requests, settings, concurrency=concurrency, progress=progress, on_reply=on_reply)


def _submit(client: openai.OpenAI, model: str, requests: Sequence[ChatRequest], settings: dict[str, Any],
            metadata: dict[str, str] | None) -> Batch:
    """The input file (custom_id = the request's index; each body as :func:`ask` sends it), uploaded,
    and the batch created from it."""
    lines = [json.dumps({"custom_id": str(i), "method": "POST", "url": ENDPOINT,
                         "body": chat_body(model, request, settings)}, ensure_ascii=False)
             for i, request in enumerate(requests)]
    upload = client.files.create(file=("selftune-batch.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint=ENDPOINT, completion_window="24h",
                                  **({"metadata": metadata} if metadata else {}))
    log.info("batch %s: %d requests to %s", batch.id, len(requests), model)
    return batch


def _wait(client: openai.OpenAI, batch: Batch, advance: Callable[[Batch], None], poll_seconds: float) -> Batch:
    """The batch once it has ended, looked at less and less often (never more than ``poll_seconds`` apart).
    A look that fails after the client's retries is tried again at the next one, the batch running on,
    up to :data:`LOOKS_FAILED` in a row (:class:`Lost`)."""
    import openai

    wait, failed = min(FIRST_POLL_SECONDS, poll_seconds), 0
    while batch.status not in ENDED:
        time.sleep(wait)
        wait = min(wait * POLL_GROWTH, poll_seconds)
        try:
            batch = client.batches.retrieve(batch.id)
        except openai.APIError as exc:
            failed += 1
            if failed >= LOOKS_FAILED:
                raise Lost(f"batch {batch.id} could not be looked at {failed} times in a row "
                           f"({type(exc).__name__}: {exc}); it may still run: "
                           f"client.batches.retrieve({batch.id!r})") from exc
            log.warning("batch %s: could not look at it (%s); trying again", batch.id, exc)
            continue
        failed = 0
        advance(batch)
    return batch


class Lost(Exception):
    """The batch can no longer be followed: its requests' replies say so, naming it."""


def _collect(client: openai.OpenAI, batch: Batch, n: int) -> list[Reply]:
    """The ``n`` replies of an ended batch, from its output and error files."""
    import openai

    lines, unread = [], None
    for file_id in (batch.output_file_id, batch.error_file_id):
        if file_id is None:
            continue
        try:
            text = client.files.content(file_id).text
        except openai.APIError as exc:
            unread = f"its file {file_id} could not be read ({type(exc).__name__}: {exc})"
            continue
        for line in text.splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a broken line: its request is reported missing
                lines.append(json.loads(line))
    return replies_of(batch, lines, n, unread)


def replies_of(batch: Batch, lines: list[dict], n: int, unread: str | None = None) -> list[Reply]:
    """Reply ``i`` from the line whose custom_id is ``str(i)`` (hosted line format: ``response`` with
    ``status_code`` and ``body``, or ``error`` with ``code`` and ``message``); one without a line says why
    from the batch's status. ``unread``: why a file of the batch could not be read."""
    found: dict[int, Reply] = {}
    for line in lines:
        custom_id = line.get("custom_id") if isinstance(line, dict) else None
        if isinstance(custom_id, str) and custom_id.isdigit() and int(custom_id) < n:
            found[int(custom_id)] = _reply_of_line(line)
    missing = _failed(_why_missing(batch, unread))
    return [found.get(i, missing) for i in range(n)]


def _reply_of_line(line: dict) -> Reply:
    from openai.types.chat import ChatCompletion
    from pydantic import ValidationError

    response, error = line.get("response"), line.get("error")
    if isinstance(response, dict):
        status, body = response.get("status_code"), response.get("body")
        if isinstance(status, int) and 200 <= status < 300:
            try:
                return reply_of(ChatCompletion.model_validate(body), None)
            except ValidationError as exc:
                return _failed(f"status {status}, but the body is not a chat completion: {exc}")
        error = body.get("error") if isinstance(body, dict) else None
        return _failed(f"status {status}" + (f" {_code_and_message(error)}" if isinstance(error, dict) else ""))
    if isinstance(error, dict):
        return _failed(_code_and_message(error))
    return _failed(f"line {line.get('id')!r} has neither a response nor an error")


def _code_and_message(error: dict) -> str:
    return f"{error.get('code') or error.get('type') or 'error'}: {error.get('message') or ''}".rstrip(": ")


def _why_missing(batch: Batch, unread: str | None) -> str:
    if unread:
        return f"no answer from batch {batch.id}: {unread}"
    if batch.status == "failed":
        errors = batch.errors.data if batch.errors and batch.errors.data else []
        first = errors[0] if errors else None
        why = (f": {_code_and_message(first.model_dump())}" + (f" (line {first.line})" if first.line else "")
               + (f", and {len(errors) - 1} more" if len(errors) > 1 else "")) if first else ""
        return f"batch {batch.id} failed{why}"
    if batch.status in ("expired", "cancelled"):
        return f"batch {batch.id} {batch.status} before this request ran"
    return f"batch {batch.id} {batch.status} without an answer to this request"


def _failed(why: str) -> Reply:
    return Reply("", 0, 0, None, error=ERROR + why)


def _hand_over(replies: list[Reply], progress: Callable[[int], None] | None, shown: list[int],
               on_reply: Callable[[int, Reply], None] | None) -> list[Reply]:
    """Each reply to ``on_reply``, in order, and the progress to its end."""
    for index, reply in enumerate(replies):
        if on_reply:
            on_reply(index, reply)
    if progress and len(replies) > shown[0]:
        progress(len(replies) - shown[0])
        shown[0] = len(replies)
    return replies
