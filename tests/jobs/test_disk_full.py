"""A job whose disk fills up is paused, not failed, with a message that says what to do; resuming it
continues from the checkpoint that was intact."""

from __future__ import annotations

import errno
import os

from sqlalchemy import select

import selftune.train.checkpoint as ckpt
from selftune.jobs import child
from selftune.jobs.worker import Worker
from selftune.jobs.workspace import EXIT_DISK_FULL, Workspace
from selftune.store.blobs import BlobStore
from selftune.store.db import Database
from selftune.store.tables import EventRow, JobRow
from tests.train.helpers import config


def ended(tmp_path, workspace: Workspace, code: int) -> tuple[JobRow, list[str]]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    worker = Worker(db=db, blobs=BlobStore(tmp_path / "files"), jobs_dir=tmp_path / "jobs", lease_seconds=5)
    with db.transaction() as session:
        session.add(JobRow(id="ftjob-1", org="local", model="tiny", training_file="file-1", method="supervised",
                           hyperparameters={}, seed=0, status="running", result_files=[]))
    with db.transaction() as session:
        worker._ended(session, session.scalar(select(JobRow)), workspace, code)
    with db.transaction() as session:
        return session.scalar(select(JobRow)), [e.message for e in session.scalars(select(EventRow))]


def test_a_child_out_of_space_at_a_checkpoint_pauses_its_job(tmp_path, tiny_model, monkeypatch):
    workspace = Workspace(tmp_path / "job")
    workspace.folder.mkdir()
    workspace.write_config(config(tmp_path, tiny_model, out=str(workspace.out)))
    save, saved = ckpt.torch.save, []

    def fill_up(obj, path, *args, **kwargs):  # the second checkpoint finds the disk full
        saved.append(path)
        if len(saved) > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        save(obj, path, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", fill_up)
    assert child._train(workspace, lambda: False) == EXIT_DISK_FULL
    step = ckpt.step_of(ckpt.list_checkpoints(workspace.out)[-1])
    job, events = ended(tmp_path, workspace, EXIT_DISK_FULL)
    assert job.status == "paused" and job.error is None
    assert events == [f"Fine-tuning job paused: No space left on the server's disk while saving the job's progress "
                      f"(its checkpoint at step {step} is intact). Free some space, then resume the job."]


def test_when_not_even_the_error_file_fits_the_exit_code_says_it(tmp_path):
    workspace = Workspace(tmp_path / "job")
    job, events = ended(tmp_path, workspace, EXIT_DISK_FULL)
    assert job.status == "paused"
    assert events == ["Fine-tuning job paused: No space left on the server's disk while saving the job's progress "
                      "(the last checkpoint is intact). Free some space, then resume the job."]


def test_no_space_for_the_results_file_pauses_a_trained_job(tmp_path, monkeypatch):
    from selftune.jobs.workspace import EXIT_DONE
    from selftune.store.atomic import DiskFull

    workspace = Workspace(tmp_path / "job")
    workspace.out.mkdir(parents=True)
    (workspace.out / "training.json").write_text("{}")
    (workspace.out / "results.csv").write_text("step\n1\n")

    def fill_up(self, file_id, source, limit):
        raise DiskFull(self.path(file_id))

    monkeypatch.setattr(BlobStore, "put", fill_up)
    job, events = ended(tmp_path, workspace, EXIT_DONE)
    assert job.status == "paused" and job.fine_tuned_model is None and job.result_files == []
    assert events == ["Fine-tuning job paused: No space left on the server's disk for the job's results file. Free "
                      "some space, then resume the job."]
