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


def fill_the_spool_after(monkeypatch, limit: int) -> None:
    """Starlette's spooled temporary files (where a multipart upload lands before selftune reads it) take
    ``limit`` bytes, then fail as a full /tmp does."""
    from starlette.datastructures import UploadFile

    write = UploadFile.write

    async def full(self, data: bytes) -> None:
        self.spooled = getattr(self, "spooled", 0) + len(data)
        if self.spooled > limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        await write(self, data)

    monkeypatch.setattr(UploadFile, "write", full)


def test_a_full_disk_while_the_upload_is_spooled_is_a_507_too(client, monkeypatch):
    from selftune.config import get_settings

    data = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n' * 5000
    upload = client.uploads.create(bytes=len(data), filename="train.jsonl", mime_type="text/jsonl",
                                   purpose="fine-tune")
    with monkeypatch.context() as patch:
        fill_the_spool_after(patch, 100_000)
        for send in (lambda: client.files.create(file=("train.jsonl", data), purpose="fine-tune"),
                     lambda: client.uploads.parts.create(upload.id, data=data)):
            with pytest.raises(openai.InternalServerError) as caught:
                send()
            assert caught.value.status_code == 507 and caught.value.body["code"] == "disk_full"
    assert client.files.list().data == []  # no row, no blob
    assert not [p for p in get_settings().blobs_dir.rglob("*") if p.is_file()]
    part = client.uploads.parts.create(upload.id, data=data)  # space again: the same upload goes on
    assert client.uploads.complete(upload.id, part_ids=[part.id]).file.bytes == len(data)
