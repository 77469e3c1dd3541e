"""The hosted-style results CSV: one row per step, validation columns where evaluated."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from selftune.store.atomic import atomic_write
from selftune.train.events import RESULTS_COLUMNS, ResultRow


def write_results_csv(path: Path, rows: list[ResultRow]) -> None:
    """The hosted service's results file: one row per step, validation columns where evaluated."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULTS_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in RESULTS_COLUMNS})
    with atomic_write(path) as f:
        f.write(buffer.getvalue())


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
