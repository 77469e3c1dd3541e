"""A batch of 200 chat requests survives ``kill -9`` of the server halfway: after the restart it completes
with 200 output lines matched by ``custom_id``, and the answers recorded before the kill are the ones in
the output file (never made again). The process boundary is the point: a real server, killed."""

from __future__ import annotations

import io
import json
import sqlite3
import time

import pytest

from selftune.evals.local_server import free_port

N = 200


def _requests() -> bytes:
    lines = [{"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "tiny", "messages": [{"role": "user", "content": f"Where is card {i}?"}],
                       "max_tokens": 24, "temperature": 0}} for i in range(N)]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _answered(home) -> dict[str, str]:
    """custom_id -> request_id of the answers the database holds (read directly: the server is dead)."""
    with sqlite3.connect(home / "selftune.db") as db:
        rows = db.execute("SELECT custom_id, response FROM batch_requests WHERE status = 'done'").fetchall()
    return {custom_id: json.loads(response)["request_id"] for custom_id, response in rows}


def _running_batch(new_server):
    """A server answering two requests at a time (so the batch is still running when it is stopped) and
    its batch of N, once a quarter of it is answered."""
    server = new_server(SELFTUNE_BATCH_CONCURRENCY="2").start()
    client = server.client()
    input_id = client.files.create(file=("requests.jsonl", io.BytesIO(_requests())), purpose="batch").id
    batch = client.batches.create(input_file_id=input_id, endpoint="/v1/chat/completions", completion_window="24h")
    deadline = time.time() + 120
    while client.batches.retrieve(batch.id).request_counts.completed < N // 4:
        assert time.time() < deadline, server.log()
        time.sleep(0.05)
    return server, batch


def _restart_and_wait(server, batch_id: str):
    """The server started again (on a fresh port: the old one may linger in TIME_WAIT), its client, and the
    batch once it has ended."""
    server.port = free_port()
    client = server.start().client()
    deadline = time.time() + 180
    while (batch := client.batches.retrieve(batch_id)).status not in ("completed", "failed", "expired", "cancelled"):
        assert time.time() < deadline, server.log()
        time.sleep(0.2)
    return client, batch


@pytest.mark.slow  # ~40 s (a server started twice, 200 requests two at a time); CI runs it
def test_a_batch_survives_kill_9_halfway_without_answering_a_request_twice(new_server):
    server, batch = _running_batch(new_server)
    server.kill()
    before = _answered(server.home)
    assert N // 4 <= len(before) < N, "the kill must land halfway"

    client, batch = _restart_and_wait(server, batch.id)
    direct = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Where is card 7?"}],
                                            max_tokens=24, temperature=0)
    output = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    server.stop()

    assert batch.status == "completed" and batch.error_file_id is None
    assert batch.request_counts.model_dump() == {"total": N, "completed": N, "failed": 0}
    assert sorted(line["custom_id"] for line in output) == sorted(f"req-{i}" for i in range(N))
    assert [line["custom_id"] for line in output] == [f"req-{i}" for i in range(N)]  # in input order
    request_ids = {line["custom_id"]: line["response"]["request_id"] for line in output}
    assert {c: request_ids[c] for c in before} == before  # answered before the kill: kept, not made again
    assert len(set(request_ids.values())) == N
    by_id = {line["custom_id"]: line["response"]["body"] for line in output}
    assert by_id["req-7"]["choices"][0]["message"]["content"] == direct.choices[0].message.content
    assert batch.usage.output_tokens == sum(b["usage"]["completion_tokens"] for b in by_id.values())


@pytest.mark.slow  # ~35 s; CI runs it
def test_ctrl_c_mid_batch_records_no_cut_short_answer_and_a_restart_finishes_it(new_server):
    server, batch = _running_batch(new_server)
    server.stop()  # Ctrl-C: the answers in flight are cut short by the shutdown, and must not count as failed
    assert server.process.returncode == 0
    with sqlite3.connect(server.home / "selftune.db") as db:
        statuses = dict(db.execute("SELECT status, count(*) FROM batch_requests GROUP BY status").fetchall())
    assert statuses.get("failed", 0) == 0 and 0 < statuses["pending"] < N

    _, batch = _restart_and_wait(server, batch.id)
    server.stop()
    assert batch.status == "completed"
    assert batch.request_counts.model_dump() == {"total": N, "completed": N, "failed": 0}
