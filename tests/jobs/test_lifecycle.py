"""The job lifecycle, the method table and the one file check, without a database or a server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from selftune.jobs.lifecycle import (
    ACTIVE,
    TERMINAL,
    IllegalTransition,
    JobStatus,
    can_move,
    file_problem,
    move,
    resumed_status,
)
from selftune.store.tables import FileRow, JobRow
from selftune.train.config import TrainConfig
from selftune.train.methods import METHODS, SHARED_HYPERPARAMETERS, Method, format_name, hyperparameter_problem

S = JobStatus


def job(status: str, **fields) -> JobRow:
    return JobRow(id="ftjob-1", status=status, **{"attempts": 0, **fields})


def test_statuses_read_as_the_api_strings():
    assert [str(s) for s in JobStatus] == ["validating_files", "queued", "running", "paused", "succeeded", "failed",
                                           "cancelled"]
    assert "running" == S.RUNNING and "succeeded" in TERMINAL  # a plain string from the database or the SDK
    assert TERMINAL == {S.SUCCEEDED, S.FAILED, S.CANCELLED}
    assert ACTIVE == {S.VALIDATING_FILES, S.QUEUED, S.RUNNING, S.PAUSED}


def test_moves_the_lifecycle_has():
    assert can_move("validating_files", S.QUEUED) and can_move("queued", S.RUNNING)
    assert can_move("running", S.RUNNING)  # taken over from a dead worker
    assert can_move("paused", S.QUEUED) and can_move("paused", S.VALIDATING_FILES)
    for done in TERMINAL:
        assert not any(can_move(done, to) for to in JobStatus)
    assert not can_move("queued", S.SUCCEEDED) and not can_move("validating_files", S.RUNNING)


def test_move_refuses_a_move_the_table_lacks():
    finished = job("succeeded")
    with pytest.raises(IllegalTransition, match="succeeded -> running"):
        move(finished, S.RUNNING)
    assert finished.status == "succeeded"


def test_leaving_running_drops_the_worker_and_ending_stamps_the_time():
    running = job("running", worker="host/1/x", estimated_finish=123)
    move(running, S.QUEUED)
    assert (running.status, running.worker, running.estimated_finish, running.finished_at) == ("queued", None, None,
                                                                                              None)
    failed = job("running", worker="host/1/x")
    move(failed, S.FAILED)
    assert failed.worker is None and failed.finished_at is not None


def test_resume_goes_back_to_the_queue_only_after_a_start():
    assert resumed_status(job("paused")) == S.VALIDATING_FILES  # its files are checked again
    assert resumed_status(job("paused", attempts=1)) == S.QUEUED  # it owns copies of its files


def test_the_method_table():
    assert list(METHODS) == ["supervised", "dpo"]
    assert METHODS[Method.SUPERVISED].file_format == "sft" and METHODS[Method.DPO].file_format == "dpo"
    assert METHODS[Method.SUPERVISED].hyperparameters == (*SHARED_HYPERPARAMETERS, "time_budget")
    assert METHODS[Method.DPO].hyperparameters == (*SHARED_HYPERPARAMETERS, "beta", "time_budget")
    assert format_name("sft") == "chat (messages)" and format_name(None) == "another"


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("n_epochs", "auto", None), ("n_epochs", 3, None), ("n_epochs", 2.0, None),
    ("n_epochs", 2.5, "n_epochs must be 'auto' or an integer, not 2.5"),
    ("n_epochs", 0, "n_epochs must be 'auto' or in [1, 50], not 0"),
    ("batch_size", True, "batch_size must be 'auto' or an integer, not True"),
    ("learning_rate_multiplier", 0, "learning_rate_multiplier must be 'auto' or in (0, 10], not 0"),
    ("beta", "x", "beta must be 'auto' or a number, not 'x'"), ("beta", 2, None),
    ("time_budget", 600, None), ("time_budget", 0, "time_budget must be 'auto' or in (0, 604800], not 0"),
    ("time_budget", "10m", "time_budget must be 'auto' or a number, not '10m'"),
])
def test_one_range_per_hyperparameter(name, value, problem):
    assert hyperparameter_problem(name, value) == problem


def test_train_config_takes_a_methods_hyperparameters_only(tmp_path):
    assert TrainConfig(train_file=tmp_path / "t", method="dpo", beta=0.5).beta == 0.5
    with pytest.raises(ValidationError, match="beta applies to method='dpo' only"):
        TrainConfig(train_file=tmp_path / "t", beta=0.5)
    with pytest.raises(ValidationError, match=r"n_epochs must be 'auto' or in \[1, 50\], not 99"):
        TrainConfig(train_file=tmp_path / "t", n_epochs=99)
    # a job without a budget carries "auto": no budget; the CLI's None means the same
    assert TrainConfig(train_file=tmp_path / "t", time_budget="auto").time_budget is None
    assert TrainConfig(train_file=tmp_path / "t", time_budget=90).time_budget == 90


def file(status="processed", purpose="fine-tune", fmt="sft", details=None) -> FileRow:
    return FileRow(id="file-1", status=status, purpose=purpose, format=fmt, status_details=details)


@pytest.mark.parametrize(("row", "method", "code", "message"), [
    (None, "supervised", "file_not_found", "invalid training_file: no such file 'file-1'."),
    (file(purpose="batch"), "supervised", "invalid_file_purpose",
     "invalid training_file: file-1 has purpose 'batch'; upload it with purpose 'fine-tune'."),
    (file(status="error", details="Line 3: messages: missing"), "supervised", "invalid_file",
     "invalid training_file: file-1 failed validation. Line 3: messages: missing"),
    (file(fmt="dpo"), "supervised", "invalid_file_format",
     "invalid training_file: file-1 is in preference (input, preferred_output, non_preferred_output) format; "
     "the supervised method needs chat (messages) examples."),
    (file(fmt="sft"), "dpo", "invalid_file_format",
     "invalid training_file: file-1 is in chat (messages) format; the dpo method needs preference (input, "
     "preferred_output, non_preferred_output) examples."),
])
def test_the_file_check_words_each_problem_once(row, method, code, message):
    problem = file_problem(row, "file-1", "training_file", method)
    assert (problem.code, problem.message) == (code, message)


def test_usable_files_and_files_still_being_checked_pass():
    assert file_problem(file(), "file-1", "training_file", "supervised") is None
    assert file_problem(file(fmt="dpo"), "file-1", "training_file", "dpo") is None
    assert file_problem(file(status="uploaded", fmt=None), "file-1", "training_file", "dpo") is None
