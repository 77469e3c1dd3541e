"""A file of several hundred MB is checked in one pass with flat memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEM = {"role": "system", "content": "Classify the message."}
ANSWER = {"role": "assistant", "content": "lost_or_stolen_card"}
SELFTUNE = str(Path(sys.executable).parent / "selftune")
# Runs the command in a fresh parent, so the peak RSS of its children is the command's alone.
MEASURE_CHILD_RSS = (
    "import resource, subprocess, sys\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    code = subprocess.run(sys.argv[2:], stdout=out).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


@pytest.mark.slow
def test_checking_a_300_mb_file_keeps_memory_flat(tmp_path):
    path, output = tmp_path / "big.jsonl", tmp_path / "report.json"
    good = json.dumps({"messages": [SYSTEM, {"role": "user", "content": "x" * 2000}, ANSWER]}) + "\n"
    bad = json.dumps({"messages": [{"role": "robot", "content": "x" * 2000}, ANSWER]}) + "\n"
    lines = 150_000
    with open(path, "w") as f:
        for i in range(lines):
            f.write(bad if i % 500 == 499 else good)
    size_mb = path.stat().st_size / 2**20
    assert size_mb > 290

    probe = subprocess.run([sys.executable, "-c", MEASURE_CHILD_RSS, str(output), SELFTUNE, "data", "check",
                            str(path), "--no-length-check", "--json"], capture_output=True, text=True, timeout=1200)
    code, max_rss_kb = map(int, probe.stdout.split())
    report = json.loads(output.read_text())
    assert code == 1
    assert report["examples"] == lines and report["valid_examples"] == lines - 300
    assert len(report["errors"]) == 100 and report["errors_not_shown"] == 200
    assert report["errors"][0]["line"] == 500 and report["errors"][0]["code"] == "invalid_role"

    peak_mb = max_rss_kb / 1024
    print(f"checked {size_mb:.0f} MB with a peak RSS of {peak_mb:.0f} MB")
    assert peak_mb < 200, f"peak memory {peak_mb:.0f} MB for a {size_mb:.0f} MB file"
