"""The relay: complete lines only, exactly once, a resumed run's repeated steps not reported twice, and
it reads what the trainer writes."""

from __future__ import annotations

from sqlalchemy import select

from selftune.jobs.relay import relay
from selftune.jobs.workspace import Workspace
from selftune.store.db import Database
from selftune.store.tables import CheckpointRow, EventRow, JobRow
from selftune.train import TrainConfig, run
from selftune.train.events import StartEvent, StepEvent
from selftune.train.hyperparams import Hyperparameters
from tests.helpers import write_jsonl

HP = Hyperparameters(n_epochs=2, batch_size=8, learning_rate_multiplier=1.0, learning_rate=1e-3, beta=None,
                     lora_rank=16, lora_alpha=32)


def line(event) -> bytes:
    return (event.model_dump_json() + "\n").encode()


def step(n: int, loss: float) -> StepEvent:
    return StepEvent(time=1_800_000_000, step=n, total_steps=3, epoch=0, train_loss=loss, train_accuracy=0.5,
                     learning_rate=1e-3, grad_norm=1.0, tokens_per_s=100.0, elapsed=float(n))


def job_setup(tmp_path, job_id="ftjob-1", method="supervised"):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    workspace = Workspace(tmp_path / "job")
    workspace.folder.mkdir()
    with db.transaction() as session:
        session.add(JobRow(id=job_id, org="local", model="tiny", training_file="file-1", method=method,
                           hyperparameters={}, seed=0, status="running", result_files=[], suffix="s"))

    def run_relay():
        with db.transaction() as session:
            relay(session, session.scalar(select(JobRow)), workspace, metrics_every=1)

    def events():
        with db.transaction() as session:
            return [(e.message, e.type, e.data) for e in session.scalars(select(EventRow).order_by(EventRow.pk))]

    return db, workspace, run_relay, events


def test_relay_is_exactly_once(tmp_path):
    db, workspace, run_relay, events = job_setup(tmp_path)
    first = line(StartEvent(time=1_800_000_000, hyperparameters=HP, examples=10, total_steps=3, tokens_per_step=80))
    step1 = line(step(1, 2.0))
    workspace.events.write_bytes(first + step1 + b'{"type": "step", "st')  # the last line is still being written
    run_relay()
    assert [message for message, _, _ in events()] == ["Fine-tuning job started: 10 examples, 3 steps",
                                                       "Step 1/3: training loss=2.0000"]
    assert events()[1][1:] == ("metrics", {"step": 1, "total_steps": 3, "train_loss": 2.0,
                                           "train_mean_token_accuracy": 0.5, "learning_rate": 1e-3,
                                           "tokens_per_second": 100.0})
    with db.transaction() as session:
        assert session.scalar(select(JobRow.events_offset)) == len(first + step1)

    # the child was killed mid-line; the next one resumed from step 1's checkpoint and repeats nothing new
    workspace.prepare_start()
    with open(workspace.events, "ab") as f:
        f.write(line(StartEvent(hyperparameters=HP, examples=10, total_steps=3, tokens_per_step=80,
                                resumed_at_step=1)) + step1 + line(step(2, 1.5)))
    run_relay()
    run_relay()  # nothing new: nothing added
    assert [message for message, _, _ in events()[2:]] == ["Resumed training from the checkpoint at step 1",
                                                           "Step 2/3: training loss=1.5000"]
    with db.transaction() as session:
        job = session.scalar(select(JobRow))
        assert job.last_step_reported == 2
        assert job.resolved_hyperparameters == {"batch_size": 8, "learning_rate_multiplier": 1.0, "n_epochs": 2,
                                                "time_budget": None}


def test_an_unreadable_line_is_skipped_not_fatal(tmp_path):
    db, workspace, run_relay, events = job_setup(tmp_path)
    workspace.events.write_bytes(b'{"type": "step", "step": "one"}\nnot json\n' + line(step(1, 2.0)))
    run_relay()
    assert [message for message, _, _ in events()] == ["Step 1/3: training loss=2.0000"]


def test_the_relay_reads_what_the_trainer_writes(tmp_path, tiny_model):
    """A real run's events file: its start, steps, evaluations and checkpoints become job events and
    checkpoint rows, with the metrics each checkpoint recorded and the ids the API serves them by."""
    db, workspace, run_relay, events = job_setup(tmp_path, method="dpo")
    rows = [{"input": {"messages": [{"role": "user", "content": f"q{i}"}]},
             "preferred_output": [{"role": "assistant", "content": "yes"}],
             "non_preferred_output": [{"role": "assistant", "content": "no"}]} for i in range(12)]
    config = TrainConfig(model=str(tiny_model), train_file=write_jsonl(tmp_path / "t.jsonl", rows),
                         valid_file=write_jsonl(tmp_path / "v.jsonl", rows[:10]), method="dpo", n_epochs=2,
                         batch_size=4, beta=0.2, out=workspace.out, events_file=workspace.events)
    result = run(config)
    run_relay()
    messages = [message for message, _, _ in events()]
    steps = result.state.global_step
    assert messages[0] == f"Fine-tuning job started: 12 examples, {steps} steps"
    assert f"Step {steps}/{steps}: training loss={result.state.results[-1]['train_loss']:.4f}" in messages
    evals = [data for _, kind, data in events() if kind == "metrics" and "valid_loss" in data]
    assert len(evals) == 2 and set(evals[0]) == {"step", "valid_loss", "valid_mean_token_accuracy"}
    with db.transaction() as session:
        job = session.scalar(select(JobRow))
        assert job.resolved_hyperparameters == {"batch_size": 4, "learning_rate_multiplier": 1.0, "n_epochs": 2,
                                                "beta": 0.2, "time_budget": None}
        checkpoints = list(session.scalars(select(CheckpointRow).order_by(CheckpointRow.step_number)))
    assert [c.model for c in checkpoints] == [f"ft:tiny:local:s:1:ckpt-step-{c.step_number}" for c in checkpoints]
    last = checkpoints[-1]
    assert last.step_number == steps
    assert last.metrics == {"step": steps, "train_loss": result.state.results[-1]["train_loss"],
                            "train_mean_token_accuracy": result.state.results[-1]["train_accuracy"],
                            "valid_loss": result.state.results[-1]["valid_loss"],
                            "valid_mean_token_accuracy": result.state.results[-1]["valid_mean_token_accuracy"]}
