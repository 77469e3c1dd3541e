"""A 1 GB upload in 64 MB parts, through the openai SDK's chunked helper, against a real server process: the
server's memory stays flat (its resident set, sampled from /proc while the upload runs, grows by less than
100 MB) and the completed File holds exactly the bytes sent (the server checks the md5)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import openai
import pytest

pytestmark = pytest.mark.slow

PART = 64 * 1024**2
TOTAL = 16 * PART  # 1 GiB
MAX_GROWTH = 100 * 1024**2


def _rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


class _Sampler(threading.Thread):
    """The largest VmRSS of ``pid`` seen every 20 ms, until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples, self.done = pid, 0, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak, self.samples = max(self.peak, _rss(self.pid)), self.samples + 1

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


def _big_file(path: Path) -> str:
    """TOTAL random bytes (no part repeats another, so a misordered part changes the md5); their md5."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "wb") as f:
        for _ in range(TOTAL // PART):
            chunk = os.urandom(PART)
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def test_a_1_gb_upload_in_64_mb_parts_keeps_the_server_memory_flat(new_server, tmp_path):
    source = tmp_path / "big.bin"
    md5 = _big_file(source)
    server = new_server().start()
    try:
        client = openai.OpenAI(base_url=server.url, api_key="local-key", max_retries=0, timeout=600)
        small = b"warm up every code path"
        warm = client.uploads.upload_file_chunked(file=small, mime_type="text/plain", purpose="user_data",
                                                  filename="warm.txt", bytes=len(small))
        assert warm.status == "completed"
        pid = server.process.pid
        baseline = _rss(pid)
        sampler = _Sampler(pid)
        sampler.start()
        try:
            done = client.uploads.upload_file_chunked(file=source, mime_type="application/octet-stream",
                                                      purpose="user_data", part_size=PART, md5=md5)
        finally:
            peak = sampler.stop()
        growth = peak - baseline
        print(f"\nserver RSS: baseline {baseline / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB (growth "
              f"{growth / 2**20:.1f} MiB over {sampler.samples} samples), VmHWM {_rss(pid, 'VmHWM') / 2**20:.0f} MiB")
        assert done.status == "completed"
        assert (done.file.bytes, done.file.filename) == (TOTAL, "big.bin")
        assert sampler.samples > 10
        assert growth < MAX_GROWTH
        stored = [p for p in (server.home / "files").rglob("*") if p.is_file()]
        assert sorted(p.stat().st_size for p in stored) == sorted([len(small), TOTAL])  # parts gone
    finally:
        server.stop()
