"""The terminal progress bar of a run: loss, tokens/s and time left, or nothing when not asked for."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, enabled: bool, total: int, completed: int = 0):
        self._bar = None
        if enabled:
            self._bar = RichProgress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"),
                                     TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
            self._task = self._bar.add_task("train", total=total, completed=completed, loss="-", speed="-")
            self._bar.start()

    def update(self, step: int, total: int, loss: float, tokens_per_s: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, total=total, loss=f"{loss:.4f}",
                             speed=f"{tokens_per_s:,.0f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
