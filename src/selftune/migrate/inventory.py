"""Take stock of what an organisation has on the hosted fine-tuning service, through its public API.

Everything is read with the official ``openai`` SDK (paged lists, the same calls a user's script
makes), so it works against the hosted service and against any selftune server alike. Nothing is
changed on the service; nothing is paid for except list and retrieve calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import openai

from selftune.migrate.plan import CheckpointRecord, FileRecord, JobRecord, Plan, StoredCompletionsRecord

HOSTED_BASE_URL = "https://api.openai.com/v1"
# jobs worth recreating: the ones whose model exists (or existed); failed and cancelled jobs are listed
# for the record only
REPLAYED_BY_DEFAULT = ("succeeded",)


def inventory(client: openai.OpenAI, *, base_url: str, data_dir: Path | None = None,
              progress: Callable[[str], None] | None = None) -> Plan:
    """Every fine-tuning job of the key's organisation with its checkpoints, files and stored traffic."""
    say = progress or (lambda _message: None)
    local = _local_files(data_dir) if data_dir else {}
    plan = Plan(source_base_url=base_url, created_at=int(time.time()),
                data_dir=str(data_dir) if data_dir else None)
    for job in client.fine_tuning.jobs.list(limit=100):  # the SDK pages with `after` until has_more is false
        say(f"job {job.id}")
        checkpoints = [CheckpointRecord(model=c.fine_tuned_model_checkpoint, step=c.step_number,
                                        metrics=_metrics(c.metrics))
                       for c in client.fine_tuning.jobs.checkpoints.list(job.id, limit=100)]
        checkpoints.sort(key=lambda c: c.step)
        method = job.method.type if job.method else "supervised"
        record = JobRecord(
            id=job.id, status=job.status, model=job.model, method=method,
            hyperparameters=_hyperparameters(job, method), suffix=job.user_provided_suffix, seed=job.seed,
            metadata=dict(job.metadata or {}), created_at=job.created_at, finished_at=job.finished_at,
            trained_tokens=job.trained_tokens, fine_tuned_model=job.fine_tuned_model,
            training_file=job.training_file, validation_file=job.validation_file,
            final_metrics=checkpoints[-1].metrics if checkpoints else {}, checkpoints=checkpoints,
            stored_completions=_stored(client, job.fine_tuned_model) if job.fine_tuned_model else None,
            replay=job.status in REPLAYED_BY_DEFAULT)
        plan.jobs.append(record)
        for file_id in filter(None, (job.training_file, job.validation_file)):
            if file_id not in plan.files:
                plan.files[file_id] = _file(client, file_id, local)
    plan.jobs.sort(key=lambda j: j.created_at)
    return plan


def _hyperparameters(job, method: str) -> dict:
    """The values the job trained with (resolved by the service, no longer "auto" once it ran)."""
    settings = getattr(job.method, method, None) if job.method else None
    values = settings.hyperparameters if settings is not None and settings.hyperparameters else job.hyperparameters
    return {k: v for k, v in (values.model_dump() if values else {}).items() if v is not None}


def _metrics(metrics) -> dict[str, float | None]:
    return {k: v for k, v in (metrics.model_dump() if metrics else {}).items() if v is not None}


def _stored(client: openai.OpenAI, model: str) -> StoredCompletionsRecord:
    count, first, last, keys = 0, None, None, set()
    for completion in client.chat.completions.list(model=model, limit=100):
        count += 1
        first = completion.created if first is None else min(first, completion.created)
        last = completion.created if last is None else max(last, completion.created)
        keys.update((getattr(completion, "metadata", None) or {}).keys())
    return StoredCompletionsRecord(count=count, first_created=first, last_created=last, metadata_keys=sorted(keys))


def _file(client: openai.OpenAI, file_id: str, local: dict[tuple[str, int], Path]) -> FileRecord:
    try:
        meta = client.files.retrieve(file_id)
    except openai.NotFoundError:
        return FileRecord(id=file_id, on_service=False)
    copy = local.get((meta.filename, meta.bytes))
    return FileRecord(id=file_id, filename=meta.filename, bytes=meta.bytes, purpose=meta.purpose, on_service=True,
                      downloadable=_downloadable(client, file_id), local_copy=str(copy) if copy else None)


def _downloadable(client: openai.OpenAI, file_id: str) -> bool:
    """Whether the content can be fetched, asked without downloading it: the response is opened for
    its status line and closed unread (the hosted service answers 400 for fine-tune uploads)."""
    try:
        with client.files.with_streaming_response.content(file_id):
            return True
    except openai.APIStatusError:
        return False


def _local_files(folder: Path) -> dict[tuple[str, int], Path]:
    """(name, size) -> path of every file under ``folder``: the key a hosted file is recognised by
    (the service never reveals a file's content or hash)."""
    found: dict[tuple[str, int], Path] = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            found.setdefault((path.name, path.stat().st_size), path.resolve())
    return found
