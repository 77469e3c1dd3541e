"""Worker bookkeeping without training: one claim per job, takeover of abandoned jobs, expired uploads."""

import io
import time

from sqlalchemy import select

from selftune.jobs.worker import Worker
from selftune.store.blobs import BlobStore
from selftune.store.db import Database
from selftune.store.tables import FileRow, JobRow, now


def setup(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    blobs = BlobStore(tmp_path / "files")
    workers = [Worker(db=db, blobs=blobs, jobs_dir=tmp_path / "jobs", lease_seconds=5) for _ in range(2)]
    return db, blobs, workers


def add_job(db, status="queued", **fields):
    with db.transaction() as session:
        session.add(JobRow(id=f"ftjob-{status}", org="local", model="tiny", training_file="file-1",
                           method="supervised", hyperparameters={}, seed=0, status=status, result_files=[], **fields))


def test_a_queued_job_is_claimed_by_one_worker_only(tmp_path):
    db, _, (first, second) = setup(tmp_path)
    add_job(db)
    assert first._claim() == "ftjob-queued"
    assert second._claim() is None
    with db.transaction() as session:
        job = session.scalar(select(JobRow))
        assert (job.status, job.worker, job.attempts) == ("running", first.id, 1)


def test_a_running_job_is_taken_over_only_when_abandoned(tmp_path):
    db, _, (first, second) = setup(tmp_path)
    add_job(db, status="running", worker="other-host/1/x", heartbeat_at=time.time())
    assert first._claim() is None  # another machine's worker, heard from just now
    with db.transaction() as session:
        session.scalar(select(JobRow)).heartbeat_at = time.time() - 6  # its lease has lapsed
    assert first._claim() == "ftjob-running"
    assert second._claim() is None


def test_a_dead_worker_on_this_host_is_taken_over_at_once(tmp_path):
    db, _, (first, _) = setup(tmp_path)
    add_job(db, status="running", worker=f"{first.host}/999999999/x", heartbeat_at=time.time())  # no such pid
    assert first._claim() == "ftjob-running"


def test_expired_uploads_are_deleted(tmp_path):
    db, blobs, (worker, _) = setup(tmp_path)
    for file_id, expires in (("file-old", now() - 1), ("file-new", now() + 3600), ("file-kept", None)):
        blobs.put(file_id, io.BytesIO(b"{}\n"), limit=100)
        with db.transaction() as session:
            session.add(FileRow(id=file_id, org="local", filename="x.jsonl", purpose="batch", bytes=3, sha256="",
                                status="processed", expires_at=expires))
    worker._delete_expired_files()
    with db.transaction() as session:
        assert sorted(session.scalars(select(FileRow.id))) == ["file-kept", "file-new"]
    assert not blobs.path("file-old").exists() and blobs.path("file-new").exists()


def test_files_still_being_checked_hold_a_job_then_decide_it(tmp_path):
    db, _, (worker, _) = setup(tmp_path)
    with db.transaction() as session:
        for file_id, status, fmt in (("file-1", "uploaded", None), ("file-2", "processed", "dpo")):
            session.add(FileRow(id=file_id, org="local", filename="t.jsonl", purpose="fine-tune", bytes=3, sha256="",
                                status=status, format=fmt))
        session.add(JobRow(id="ftjob-a", org="local", model="tiny", training_file="file-1", method="supervised",
                           hyperparameters={}, seed=0, status="validating_files", result_files=[]))
        session.add(JobRow(id="ftjob-b", org="local", model="tiny", training_file="file-2", method="supervised",
                           hyperparameters={}, seed=0, status="validating_files", result_files=[]))

    def status(job_id):
        with db.transaction() as session:
            job = session.scalar(select(JobRow).where(JobRow.id == job_id))
            return job.status, job.error

    worker._promote_validated()
    assert status("ftjob-a") == ("validating_files", None)  # its file is still being checked
    assert status("ftjob-b")[0] == "failed"  # a preference file for a supervised job
    assert status("ftjob-b")[1]["param"] == "training_file"
    with db.transaction() as session:
        row = session.scalar(select(FileRow).where(FileRow.id == "file-1"))
        row.status, row.status_details = "error", "Invalid file format.\nLine 3: messages: missing"
    worker._promote_validated()
    state, error = status("ftjob-a")
    assert state == "failed" and error["code"] == "invalid_file" and "Line 3" in error["message"]


def test_the_worker_hands_the_child_a_checked_train_config(tmp_path, monkeypatch):
    from selftune.config import Settings
    from selftune.jobs.workspace import Workspace

    monkeypatch.setenv("SELFTUNE_BASE_MODELS", f"tiny={tmp_path / 'tiny'}")
    worker = Worker.from_settings(Settings(home=tmp_path, concurrent_jobs=2, metrics_every=5))
    assert (worker.concurrent_jobs, worker.metrics_every, worker.jobs_dir) == (2, 5, tmp_path / "jobs")
    worker.blobs.put("file-1", io.BytesIO(b"{}\n"), limit=100)
    with worker.db.transaction() as session:
        for job_id, hp in (("ftjob-ok", {"n_epochs": 2, "beta": 0.3}), ("ftjob-bad", {"n_epochs": 99})):
            session.add(JobRow(id=job_id, org="local", model="tiny", training_file="file-1", method="dpo", seed=7,
                               hyperparameters={"batch_size": "auto", **hp}, status="running", result_files=[]))
        session.add(FileRow(id="file-1", org="local", filename="t.jsonl", purpose="fine-tune", bytes=3, sha256="",
                            status="processed", format="dpo"))
    workspace = Workspace(tmp_path / "jobs" / "ftjob-ok")
    with worker.db.transaction() as session:
        config = worker._train_config(session, session.scalar(select(JobRow).where(JobRow.id == "ftjob-ok")),
                                      workspace)
    assert (config.model, config.method, config.seed, config.n_epochs, config.beta) == (
        str(tmp_path / "tiny"), "dpo", 7, 2, 0.3)
    assert config.train_file == workspace.data / "file-1.jsonl" and config.events_file == workspace.events
    workspace.write_config(config)
    assert workspace.read_config() == config

    worker._start("ftjob-bad")  # refused before any child starts
    assert not worker.running
    with worker.db.transaction() as session:
        job = session.scalar(select(JobRow).where(JobRow.id == "ftjob-bad"))
        assert job.status == "failed" and job.error["code"] == "invalid_request"
        assert "n_epochs must be 'auto' or in [1, 50], not 99" in job.error["message"]
