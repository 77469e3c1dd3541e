"""Two ``selftune worker`` processes on one real PostgreSQL queue: every job runs exactly once.

SQLite tests only exercise the conditional UPDATE; the ``FOR UPDATE SKIP LOCKED`` claim that lets
workers on several machines share a queue needs the database it was written for. The fixture runs a
throwaway PostgreSQL (Debian's ``postgresql`` package, installed by ``.ci/run``) in a temporary folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from selftune.evals.local_server import free_port

JOBS = 6
PG_USER, PG_DATABASE = "selftune", "selftune_queue"


def _pg_bin() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: PATH first, then Debian's versioned folders (newest first)."""
    candidates = []
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(map(Path, versioned), key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)],
                         reverse=True)
    return next((c for c in candidates if all((c / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))),
                None)


def _as_postgres_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: there, run them as the ``postgres`` user the package creates."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *command]
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server on a free 127.0.0.1 port (trust auth), stopped and deleted after the module."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin); "
                    "`apt-get install postgresql`, as .ci/run does")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and there is no 'postgres' user to run PostgreSQL as")
    # not under pytest's tmp_path: that is private to root, and the server may run as 'postgres'
    root = Path(tempfile.mkdtemp(prefix="selftune-pg-"))
    data, log, port = root / "data", root / "postgres.log", free_port()
    if os.geteuid() == 0:
        os.chown(root, owner.pw_uid, owner.pw_gid)

    def run(*command: str) -> None:
        done = subprocess.run(_as_postgres_user([str(bin_dir / command[0]), *command[1:]]), cwd=root,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log_text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log_text}")

    started = False
    try:
        run("initdb", "-D", str(data), "-A", "trust", "-U", PG_USER, "--no-locale", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off"
        run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        started = True
        with psycopg.connect(host="127.0.0.1", port=port, user=PG_USER, dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {PG_DATABASE}")
        yield f"postgresql://{PG_USER}@127.0.0.1:{port}/{PG_DATABASE}"
    finally:
        try:
            if started:
                run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)


def start_worker(home: Path, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "selftune.cli", "worker", "--home", str(home)],
                                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM: the worker stops its children at a checkpoint and exits."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_log(log: Path, pattern: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if re.search(pattern, log.read_text(errors="replace")):
            return
        if process.poll() is not None:
            raise AssertionError(f"worker exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in {log.name} after {timeout}s:\n{log.read_text(errors='replace')}")


@pytest.mark.slow
def test_two_workers_run_every_job_exactly_once(postgres_url, service_env, new_server, tmp_path, chat_rows, upload,
                                                wait_for, all_events):
    from selftune.store.db import Database
    from selftune.store.tables import JobRow, ModelRow

    env = {**service_env, "SELFTUNE_DATABASE_URL": postgres_url}
    home = tmp_path / "home"
    home.mkdir()
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    # started together with the server: three processes migrate the empty database at once
    workers = [start_worker(home, env, log) for log in logs]
    server = new_server(home, ["--no-worker"], SELFTUNE_DATABASE_URL=postgres_url)
    try:
        server.start()
        for worker, log in zip(workers, logs, strict=True):
            wait_for_log(log, r"worker \S+ started", worker)  # both are polling before any job is queued
        client = server.client()
        training = upload(client, tmp_path / "train.jsonl", chat_rows(40))
        hyperparameters = {"n_epochs": 2, "batch_size": 8}
        jobs = [client.fine_tuning.jobs.create(model="tiny", training_file=training.id, seed=i,
                                               method={"type": "supervised",
                                                       "supervised": {"hyperparameters": hyperparameters}})
                for i in range(JOBS)]
        finished = [wait_for(client, job.id, timeout=600) for job in jobs]

        for job in finished:
            assert job.status == "succeeded", (job.id, job.error)
            messages = [e.message for e in all_events(client, job.id)]
            assert sum(m.startswith("Fine-tuning job started") for m in messages) == 1, messages
            assert sum(m.startswith("New fine-tuned model created") for m in messages) == 1, messages
            assert messages.count("The job has successfully completed") == 1, messages
            assert len(job.result_files) == 1

        ids = [job.id for job in jobs]
        db = Database(postgres_url)
        try:
            with db.transaction() as session:
                rows = session.scalars(select(JobRow).where(JobRow.id.in_(ids))).all()
                models = session.scalars(select(ModelRow).where(ModelRow.job_id.in_(ids))).all()
        finally:
            db.dispose()
        assert sorted((r.id, r.attempts, r.status, r.worker) for r in rows) == \
            sorted((i, 1, "succeeded", None) for i in ids)
        assert sorted(m.job_id for m in models) == sorted(ids)  # one registered model per job

        # each worker logs the jobs it starts: across both, every job started once, and both took a share
        started = [re.findall(r"job (ftjob-\w+): training in child process", log.read_text()) for log in logs]
        assert sorted(started[0] + started[1]) == sorted(ids), started
        assert all(started), f"one worker trained every job: {started}"
    finally:
        for worker in workers:
            stop(worker)
        server.stop()
    assert [w.returncode for w in workers] == [0, 0], [log.read_text(errors="replace")[-2000:] for log in logs]


@pytest.mark.slow
def test_two_servers_on_one_postgres_database_answer_a_batch_once(postgres_url, new_server, tmp_path):
    """The batch runner's claim, answers and files on PostgreSQL (FOR UPDATE SKIP LOCKED and the conditional
    updates), with two servers polling the same database: each request is answered once, by one of them."""
    import io
    import json
    import time

    home = tmp_path / "batch-home"  # shared: the output file's bytes are written by whichever server ends the batch
    home.mkdir()
    servers = [new_server(home, ["--no-worker"], SELFTUNE_DATABASE_URL=postgres_url) for _ in range(2)]
    try:
        for server in servers:
            server.start()
        client = servers[0].client()
        lines = [{"custom_id": f"pg-{i}", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": "tiny", "messages": [{"role": "user", "content": f"card {i}"}], "max_tokens": 8,
                           "temperature": 0}} for i in range(20)]
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        input_id = client.files.create(file=("b.jsonl", io.BytesIO(data)), purpose="batch").id
        batch = client.batches.create(input_file_id=input_id, endpoint="/v1/chat/completions", completion_window="24h")
        deadline = time.time() + 120
        while (batch := servers[1].client().batches.retrieve(batch.id)).status != "completed":
            assert time.time() < deadline and batch.status in ("validating", "in_progress", "finalizing"), batch
            time.sleep(0.2)
        output = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    finally:
        for server in servers:
            server.stop()
    assert batch.request_counts.model_dump() == {"total": 20, "completed": 20, "failed": 0}
    assert [line["custom_id"] for line in output] == [f"pg-{i}" for i in range(20)]
