"""A full disk while training saves a checkpoint or its results file, and while ``selftune export``
writes a merged model: a clear DiskFull error, what was there before intact, nothing half-written."""

from __future__ import annotations

import contextlib
import errno
import os

import pytest

import selftune.train.checkpoint as ckpt
import selftune.train.metrics as metrics
from selftune.errors import SelftuneError
from selftune.export.merged import export_merged
from selftune.store.atomic import DiskFull
from selftune.train import run
from selftune.train.checkpoint import list_checkpoints, problem, step_of
from tests.train.helpers import config


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def results_rows(out) -> int:
    return len((out / "results.csv").read_text().splitlines()) - 1


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, tiny_model, monkeypatch):
    cfg = config(tmp_path, tiny_model)
    save, saved = ckpt.torch.save, []

    def fill_up(obj, path, *args, **kwargs):  # the second checkpoint's optimizer state: the disk is full
        saved.append(path)
        if len(saved) > 2:
            raise no_space()
        save(obj, path, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", fill_up)
    with pytest.raises(DiskFull, match="No space left on the disk for .*step-"):
        run(cfg)
    (first,) = list_checkpoints(cfg.out)
    assert problem(first) is None
    assert [p.name for p in (cfg.out / "checkpoints").iterdir()] == [first.name]  # no half folder
    assert results_rows(cfg.out) == step_of(first)  # the results of the intact checkpoint


def test_a_full_disk_while_writing_the_results_file_keeps_the_previous_one(tmp_path, tiny_model, monkeypatch):
    cfg = config(tmp_path, tiny_model)
    write, calls = metrics.atomic_write, []

    @contextlib.contextmanager
    def fill_up(path, *args, **kwargs):
        calls.append(path)
        with write(path, *args, **kwargs) as f:
            if len(calls) > 1:  # the second results file: half written, then the disk is full
                f.write("step,train_loss\n1,")
                raise no_space()
            yield f

    monkeypatch.setattr(metrics, "atomic_write", fill_up)
    with pytest.raises(DiskFull, match="results.csv"):
        run(cfg)
    first = list_checkpoints(cfg.out)[0]
    assert results_rows(cfg.out) == step_of(first)  # the first file, whole
    assert sorted(p.name for p in cfg.out.iterdir() if p.name.startswith(".")) == []  # no temporary file


def test_a_full_disk_during_export_leaves_no_folder(tmp_path, tiny_model, monkeypatch):
    from transformers import PreTrainedTokenizerBase

    cfg = config(tmp_path, tiny_model, n_epochs=1)
    run(cfg)

    def fill_up(*_args, **_kwargs):  # the weights are written: the tokenizer finds the disk full
        raise no_space()

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", fill_up)
    out = tmp_path / "exported"
    with pytest.raises(SelftuneError, match=f"No space left on the disk for {out}: nothing was written"):
        export_merged(cfg.out, out)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".exported")]
