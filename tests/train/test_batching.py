"""Step composition, the learning-rate schedule, and the time-budget planner (pure functions, no model)."""

from __future__ import annotations

import random

import pytest

from selftune.train.batching import epoch_steps, micro_batches
from selftune.train.hyperparams import learning_rate_at
from selftune.train.time_budget import MIN_RESERVE_SECONDS, BudgetPlanner

rng = random.Random(0)
LENGTHS = [rng.randint(5, 300) for _ in range(300)] + [900, 1200]  # two examples above the step budget
TOKENS_PER_STEP = 600


def test_epoch_steps_are_deterministic_per_seed_and_epoch():
    """A resumed run recomputes the order: the same (seed, epoch) must give the same steps."""
    first = epoch_steps(LENGTHS, TOKENS_PER_STEP, seed=3, epoch=1)
    assert first == epoch_steps(list(LENGTHS), TOKENS_PER_STEP, seed=3, epoch=1)
    assert first != epoch_steps(LENGTHS, TOKENS_PER_STEP, seed=3, epoch=2)
    assert first != epoch_steps(LENGTHS, TOKENS_PER_STEP, seed=4, epoch=1)


@pytest.mark.parametrize("epoch", [0, 1, 7])
def test_every_example_once_per_epoch_within_the_token_budget(epoch):
    """No example is lost or repeated, and a step is over budget only when it holds a single example."""
    steps = epoch_steps(LENGTHS, TOKENS_PER_STEP, seed=0, epoch=epoch)
    flat = [i for step in steps for i in step]
    assert sorted(flat) == list(range(len(LENGTHS)))
    for step in steps:
        assert step
        tokens = sum(LENGTHS[i] for i in step)
        assert tokens <= TOKENS_PER_STEP or len(step) == 1
    assert [len(s) for s in steps if sum(LENGTHS[i] for i in s) > TOKENS_PER_STEP] == [1, 1]
    # steps are filled: fewer steps than one per example, and not far above the ideal count
    assert sum(LENGTHS) / TOKENS_PER_STEP <= len(steps) < 1.5 * sum(LENGTHS) / TOKENS_PER_STEP + 2


def test_micro_batches_split_a_step_in_order():
    step = [5, 1, 300, 7, 301, 2]
    rows = micro_batches(step, LENGTHS, max_row_tokens=700)
    assert [i for row in rows for i in row] == step
    for row in rows:
        assert sum(LENGTHS[i] for i in row) <= 700 or len(row) == 1
    assert micro_batches(step, LENGTHS, max_row_tokens=10**6) == [step]
    assert micro_batches(step, LENGTHS, max_row_tokens=1) == [[i] for i in step]


def test_learning_rate_warms_up_then_decays_to_zero():
    """5% linear warm-up to the peak, then linear decay reaching exactly 0 at the last step."""
    peak, total = 1e-3, 100
    rates = [learning_rate_at(step, total, peak) for step in range(total + 1)]
    assert rates[0] == pytest.approx(peak / 5)
    assert rates[:5] == sorted(rates[:5]) and rates[4] == pytest.approx(peak)
    assert max(rates) == pytest.approx(peak)
    after = rates[4:]
    assert all(a >= b for a, b in zip(after, after[1:], strict=False))
    assert rates[total] == 0.0 and rates[total - 1] == pytest.approx(peak / 95)
    assert all(r >= 0 for r in rates) and learning_rate_at(total + 5, total, peak) == 0.0
    assert learning_rate_at(0, 1, peak) == peak  # a one-step run still takes a step


def simulate(planner: BudgetPlanner, step_seconds: float, full_schedule: int, tokens: int = 100) -> tuple[int, float]:
    """Run steps as the trainer does (one plan after each step) until the plan is reached."""
    total, step, elapsed = full_schedule, 0, 0.0
    while step < total:
        step += 1
        elapsed += step_seconds
        planned = planner.plan(step, elapsed, tokens, step_seconds, tokens, full_schedule)
        assert planned <= full_schedule
        total = max(planned, step)
    return step, elapsed


def test_budget_planner_never_plans_beyond_the_full_schedule():
    """Fast steps: the budget allows more than asked for, so the run is exactly the requested schedule."""
    assert simulate(BudgetPlanner(3600), step_seconds=0.01, full_schedule=200) == (200, pytest.approx(2.0))


def test_budget_planner_ends_the_run_inside_the_budget():
    """Slow steps: the plan shrinks so that the run ends before the budget, leaving the reserve."""
    budget = 120.0
    steps, elapsed = simulate(BudgetPlanner(budget), step_seconds=1.0, full_schedule=10_000)
    assert budget - MIN_RESERVE_SECONDS - 2 <= elapsed <= budget - MIN_RESERVE_SECONDS
    assert steps == elapsed


def test_budget_planner_stops_at_the_current_step_when_time_is_spent():
    planner = BudgetPlanner(60.0)
    assert planner.plan(3, 20.0, 100, 1.0, 100, 1000) <= 1000
    assert planner.plan(40, 59.0, 100, 1.0, 100, 1000) == 40  # past the reserve: stop now
    assert planner.plan(41, 61.0, 100, 1.0, 100, 1000) == 41
