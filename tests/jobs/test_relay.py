"""The relay: complete lines only, exactly once, and a resumed run's repeated steps are not reported twice."""

import json

from sqlalchemy import select

from selftune.jobs.relay import relay
from selftune.jobs.workspace import Workspace
from selftune.store.db import Database
from selftune.store.tables import EventRow, JobRow


def line(**fields) -> bytes:
    return (json.dumps({"time": 1_800_000_000, **fields}) + "\n").encode()


def test_relay_is_exactly_once(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    workspace = Workspace(tmp_path / "job")
    workspace.folder.mkdir()
    with db.transaction() as session:
        session.add(JobRow(id="ftjob-1", org="local", model="tiny", training_file="file-1", method="supervised",
                           hyperparameters={}, seed=0, status="running", result_files=[]))

    def run_relay():
        with db.transaction() as session:
            job = session.scalar(select(JobRow))
            relay(session, job, workspace, metrics_every=1)

    def events():
        with db.transaction() as session:
            return [e.message for e in session.scalars(select(EventRow).order_by(EventRow.pk))]

    first = line(type="start", hyperparameters={"n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 1.0},
                 examples=10, total_steps=3)
    step1 = line(type="step", step=1, total_steps=3, train_loss=2.0, elapsed=1.0)
    workspace.events.write_bytes(first + step1 + b'{"type": "step", "st')  # the last line is still being written
    run_relay()
    assert events() == ["Fine-tuning job started: 10 examples, 3 steps", "Step 1/3: training loss=2.0000"]
    with db.transaction() as session:
        assert session.scalar(select(JobRow.events_offset)) == len(first + step1)

    # the child was killed mid-line; the next one resumed from step 1's checkpoint and repeats nothing new
    workspace.prepare_start()
    with open(workspace.events, "ab") as f:
        f.write(line(type="start", hyperparameters={}, resumed_at_step=1) + step1
                + line(type="step", step=2, total_steps=3, train_loss=1.5, elapsed=2.0))
    run_relay()
    run_relay()  # nothing new: nothing added
    assert events()[2:] == ["Resumed training from the checkpoint at step 1", "Step 2/3: training loss=1.5000"]
    with db.transaction() as session:
        job = session.scalar(select(JobRow))
        assert job.last_step_reported == 2 and job.resolved_hyperparameters is not None
