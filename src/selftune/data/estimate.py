"""The hosted service's "auto" epoch rule and billing, so estimates match what users know.

The constants are the ones OpenAI publishes in its fine-tuning data-preparation cookbook: aim
for 3 epochs, but see at least 100 and at most 25,000 examples in total.
"""

from __future__ import annotations

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def auto_epochs(n_examples: int) -> int:
    """Epochs that ``n_epochs="auto"`` picks for a training file of this many examples."""
    if n_examples <= 0:
        return TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def billed_tokens(example_tokens: list[int], epochs: int, max_tokens_per_example: int) -> int:
    """Tokens the hosted service bills: each example capped at the context, times epochs."""
    return epochs * sum(min(n, max_tokens_per_example) for n in example_tokens)


def stepped_tokens(conversation_tokens: tuple[int, ...], max_length: int) -> int:
    """Tokens the trainer steps over for one example in one epoch: every conversation, each cut at
    ``max_length`` (``TrainingData.lengths``). Training speed is measured in these
    (:mod:`selftune.data.calibration`); for a chat file they equal the billed tokens."""
    return sum(min(n, max_length) for n in conversation_tokens)
