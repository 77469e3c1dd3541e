"""Where a run's numbers go: the hosted-style results CSV, the JSON-lines event stream, the terminal."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from selftune.store.atomic import atomic_write

RESULTS_COLUMNS = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]


def write_results_csv(path: Path, rows: list[dict]) -> None:
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


class EventLog:
    """Appends one JSON object per line (and flushes it) so a worker can follow a run as it goes."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, kind: str, **fields) -> None:
        if not self.path:
            return
        line = json.dumps({"type": kind, "time": round(time.time(), 3), **fields})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
