"""SQLite under concurrent writers: uploads, job creations and stored completions from several threads
of the API, while another process (a second server, a worker, a backup) holds the database's write lock
over and over. Waiting for the lock is fine; a 500 is not."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time

import openai
import pytest

HELLO = [{"role": "user", "content": "Where is my new card?"}]


def hold_the_write_lock(database: str, stop, held: float) -> None:
    """Another process's long write transactions, back to back (SQLite locks the whole database)."""
    connection = sqlite3.connect(database, timeout=60, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS elsewhere (n INTEGER)")
    while not stop.is_set():
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO elsewhere VALUES (1)")
        time.sleep(held)
        connection.execute("COMMIT")
        time.sleep(held / 4)
    connection.close()


def test_concurrent_writers_never_get_a_500(serve_in_process, tmp_path, chat_rows, upload):
    from selftune.config import get_settings

    with serve_in_process() as connect:
        client = connect()
        database = get_settings().database.split("///", 1)[1]
        training = upload(client, tmp_path / "train.jsonl", chat_rows(10))
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        other = context.Process(target=hold_the_write_lock, args=(database, stop, 0.2))
        other.start()
        done, failures = [], []

        def writer(kind: int) -> None:
            for i in range(6):
                try:
                    if kind == 0:
                        client.files.create(file=(f"f{i}.jsonl", (tmp_path / "train.jsonl").read_bytes()),
                                            purpose="fine-tune")
                    elif kind == 1:  # created, then cancelled (a write of its own) before it trains much
                        job = client.fine_tuning.jobs.create(model="tiny", training_file=training.id)
                        client.fine_tuning.jobs.cancel(job.id)
                    else:
                        client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=3, store=True,
                                                       metadata={"run": str(i)})
                    done.append(kind)
                except Exception as exc:  # noqa: BLE001 - a 500, or the server's exception the TestClient raises
                    failures.append(exc)

        try:
            threads = [threading.Thread(target=writer, args=(k % 3,)) for k in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            stop.set()
            other.join(timeout=30)
        assert failures == [] and len(done) == 36


def test_a_write_lock_held_past_the_busy_timeout_is_a_503_to_retry(serve_in_process, monkeypatch):
    """A lock held longer than the wait (a backup, a stuck process): 503 with Retry-After and a clear
    message, which the openai SDK retries by itself."""
    from selftune.config import get_settings
    from selftune.store import db

    monkeypatch.setattr(db, "BUSY_TIMEOUT_SECONDS", 0.2)
    with serve_in_process() as connect:
        client = connect()
        connection = sqlite3.connect(get_settings().database.split("///", 1)[1], isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(openai.InternalServerError) as caught:
                client.files.create(file=("a.jsonl", b"{}"), purpose="fine-tune")
        finally:
            connection.execute("ROLLBACK")
        assert caught.value.status_code == 503 and caught.value.response.headers["retry-after"] == "1"
        assert caught.value.body["code"] == "database_busy"
        assert caught.value.body["message"].startswith("The database is busy: another process held its write lock")
        assert not [p for p in get_settings().blobs_dir.rglob("*") if p.is_file()]  # no bytes without a row
        assert client.files.create(file=("a.jsonl", b"{}"), purpose="fine-tune").id  # and once it is free
