"""Fit a run into a time budget by choosing how many steps to take, not by cutting it short.

The first steps measure this machine's speed; from then on the planned number of steps (and with it
the learning-rate schedule, which decays to zero at the last step) is set so the run ends inside the
budget, leaving a reserve for the final evaluation and save. The plan is revised as speed settles.
"""

from __future__ import annotations

MEASURE_STEPS = 3  # steps before the first plan (the very first one pays one-off costs)
REPLAN_EVERY = 10
RESERVE_FRACTION = 0.05  # of the budget, kept for the final evaluation and checkpoint
MIN_RESERVE_SECONDS = 5.0


class BudgetPlanner:
    def __init__(self, budget_seconds: float):
        self.budget = budget_seconds
        self.reserve = max(MIN_RESERVE_SECONDS, RESERVE_FRACTION * budget_seconds)
        self._tokens = 0
        self._seconds = 0.0
        self._seen = 0
        self._current: int | None = None

    def plan(self, step: int, elapsed: float, step_tokens: int, step_seconds: float, tokens_per_step: int,
             full_schedule_steps: int) -> int:
        """Total steps the run should take, given the speed measured so far (never more than the
        full schedule of the requested epochs); ``step`` steps are done after ``elapsed`` seconds."""
        self._seen += 1
        if self._seen > 1:  # the first step measured in this process includes warm-up costs
            self._tokens += step_tokens
            self._seconds += step_seconds
        left = self.budget - self.reserve - elapsed
        if left <= 0:
            return step
        measuring = self._seen < MEASURE_STEPS and elapsed < self.budget / 4
        if measuring or (self._current is not None and self._seen % REPLAN_EVERY):
            return self._current if self._current is not None else full_schedule_steps
        seconds_per_step = self._seconds / self._tokens * tokens_per_step if self._tokens else step_seconds
        fit = step + int(left / seconds_per_step) if seconds_per_step > 0 else full_schedule_steps
        self._current = max(step, min(full_schedule_steps, fit))
        return self._current
