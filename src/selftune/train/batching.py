"""Which examples go into which optimizer step: by tokens, not by count, and similar lengths together.

Each epoch is a seeded permutation (so a resumed run sees exactly the same order). Within windows
of the permutation, examples are sorted by length and cut into steps of about ``tokens_per_step``
tokens; the steps are then shuffled. Similar lengths in a step keep per-example attention padding
small, and a token budget gives every step a similar amount of work and gradient signal.
"""

from __future__ import annotations

import torch

STEPS_PER_WINDOW = 16  # how far lengths are sorted: wider sorts better, narrower keeps more randomness


def epoch_steps(lengths: list[int], tokens_per_step: int, seed: int, epoch: int) -> list[list[int]]:
    """Example indices of every step of ``epoch``; the same arguments give the same answer."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window_tokens = tokens_per_step * STEPS_PER_WINDOW
    steps: list[list[int]] = []
    window: list[int] = []
    tokens = 0
    for index in order:
        window.append(index)
        tokens += lengths[index]
        if tokens >= window_tokens:
            steps.extend(_cut(window, lengths, tokens_per_step))
            window, tokens = [], 0
    if window:
        steps.extend(_cut(window, lengths, tokens_per_step))
    shuffle = torch.randperm(len(steps), generator=generator).tolist()
    return [steps[i] for i in shuffle]


def _cut(window: list[int], lengths: list[int], tokens_per_step: int) -> list[list[int]]:
    return micro_batches(sorted(window, key=lambda i: lengths[i]), lengths, tokens_per_step)


def micro_batches(step: list[int], lengths: list[int], max_row_tokens: int) -> list[list[int]]:
    """Cut ``step`` in order into groups of at most ``max_row_tokens`` (one example may exceed it
    alone): the rows of a step, whose gradients are summed before the optimizer step (also how a
    length-sorted window is cut into steps)."""
    rows: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for index in step:
        if current and tokens + lengths[index] > max_row_tokens:
            rows.append(current)
            current, tokens = [], 0
        current.append(index)
        tokens += lengths[index]
    if current:
        rows.append(current)
    return rows
