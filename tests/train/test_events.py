"""The trainer -> worker contract: every event and the checkpoint state read back as they were written."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from selftune.train.events import (
    CheckpointEvent,
    EarlyStopEvent,
    EpochEvent,
    EvalEvent,
    EventLog,
    PlanEvent,
    ResultRow,
    RunState,
    StartEvent,
    StepEvent,
    StoppedEvent,
    TrainerState,
    WarningEvent,
    hosted_metrics,
    parse_event,
    read_events,
)
from selftune.train.hyperparams import Hyperparameters

HP = Hyperparameters(n_epochs=3, batch_size=8, learning_rate_multiplier=2.0, learning_rate=2e-3, beta=0.1,
                     lora_rank=16, lora_alpha=32)
STEP = StepEvent(step=3, total_steps=9, epoch=0, train_loss=1.25, train_accuracy=0.5, learning_rate=1e-3,
                 grad_norm=0.7, tokens_per_s=812.5, elapsed=4.2)
EVENTS = [
    StartEvent(hyperparameters=HP, examples=12, total_steps=9, tokens_per_step=96, resumed_at_step=3),
    STEP,
    EvalEvent(step=3, valid_loss=1.5, valid_mean_token_accuracy=0.25),
    EpochEvent(epoch=1, step=3),
    CheckpointEvent(step=3, path="/tmp/out/checkpoints/step-000003"),
    PlanEvent(step=3, total_steps=6, reason="time budget 60s"),
    EarlyStopEvent(step=3, best_valid_loss=1.4),
    StoppedEvent(step=3),
    WarningEvent(message="t.jsonl: 2 example(s) are longer than 256 tokens and were truncated"),
]


def test_every_event_reads_back_as_written(tmp_path):
    log = EventLog(tmp_path / "sub" / "events.jsonl")
    for event in EVENTS:
        log.emit(event)
    assert read_events(tmp_path / "sub" / "events.jsonl") == EVENTS
    assert read_events(tmp_path / "sub" / "events.jsonl")[0].hyperparameters == HP


def test_a_diverged_loss_is_kept():
    line = STEP.model_copy(update={"train_loss": math.nan}).model_dump_json()
    assert math.isnan(parse_event(line).train_loss)


def test_a_line_that_is_no_event_is_refused():
    for line in ('{"type": "nope", "time": 1}', '{"type": "step", "time": 1, "step": 1}', "not json"):
        with pytest.raises(ValidationError):
            parse_event(line)


def test_events_in_the_hosted_api_names():
    assert STEP.hosted_data() == {"step": 3, "total_steps": 9, "train_loss": 1.25, "train_mean_token_accuracy": 0.5,
                                  "learning_rate": 1e-3, "tokens_per_second": 812.5}
    assert hosted_metrics({"train_accuracy": 1.0, "valid_loss": 2.0}) == {"train_mean_token_accuracy": 1.0,
                                                                          "valid_loss": 2.0}


def test_the_checkpoint_state_reads_back_as_written(tmp_path):
    rows = [ResultRow(step=1, train_loss=2.0, train_accuracy=0.1, valid_loss=None, valid_mean_token_accuracy=None),
            ResultRow(step=2, train_loss=1.0, train_accuracy=0.2, valid_loss=1.5, valid_mean_token_accuracy=0.3)]
    state = TrainerState(run=RunState(epoch=1, global_step=2, total_steps=4, elapsed=3.5, tokens_seen=100,
                                      results=rows, best_valid_loss=1.5),
                         fingerprint={"model": "tiny", "hyperparameters": HP.to_dict()})
    state.write(tmp_path)
    again = TrainerState.read(tmp_path)
    assert again == state
    assert again.run.metrics_at(1) == rows[0] and again.run.metrics_at(7) == rows[1]
    assert RunState().metrics_at(1) is None
