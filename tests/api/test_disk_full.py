"""A full disk during an upload: a clear 507 in the error shape (never a traceback), and nothing kept,
neither bytes nor a row."""

from __future__ import annotations

import errno
import os

import openai
import pytest

import selftune.store.atomic as atomic


def fill_the_disk_after(monkeypatch, limit: int) -> None:
    """Every file the atomic writer opens takes ``limit`` bytes, then fails as a full disk does."""
    fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > limit:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    monkeypatch.setattr(atomic.os, "fdopen", lambda *a, **k: Full(fdopen(*a, **k)))


def test_an_upload_on_a_full_disk_is_a_507_and_keeps_nothing(client, monkeypatch, tmp_path):
    from selftune.config import get_settings

    data = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n' * 5000
    with monkeypatch.context() as patch:
        fill_the_disk_after(patch, 100_000)
        with pytest.raises(openai.InternalServerError) as caught:
            client.files.create(file=("train.jsonl", data), purpose="fine-tune")
    assert caught.value.status_code == 507
    assert caught.value.body == {"message": "No space left on the server's disk: nothing was written. Try again "
                                            "once space is freed.", "type": "server_error", "param": None,
                                 "code": "disk_full"}
    blobs = get_settings().blobs_dir
    assert not [p for p in blobs.rglob("*") if p.is_file()]  # no blob, no temporary file
    assert client.files.list().data == []  # no row
    assert client.files.create(file=("train.jsonl", data), purpose="fine-tune").bytes == len(data)  # space again
