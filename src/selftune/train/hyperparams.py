"""What ``"auto"`` means for each hyperparameter, resolved once from the training data.

Epochs follow the hosted rule (:func:`selftune.data.estimate.auto_epochs`). The hosted service does
not publish its batch-size and learning-rate rules; ours are documented in docs/training.md and
were chosen on Banking77's validation split (never its test split).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from selftune.data.estimate import auto_epochs
from selftune.train.config import TrainConfig
from selftune.train.methods import method_spec

MIN_AUTO_BATCH, MAX_AUTO_BATCH = 8, 16  # on Banking77 valid, batch 10 beat 32 by 15 points (3 epochs of 1k)
EXAMPLES_PER_AUTO_BATCH = 100  # one more example per step for every 100 in the file, within the bounds
DEFAULT_BETA = 0.1  # TRL's and the hosted service's default
WARMUP_FRACTION = 0.05


@dataclass(frozen=True)
class Hyperparameters:
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    learning_rate: float
    beta: float | None
    lora_rank: int | None
    lora_alpha: int | None
    time_budget: float | None = None  # seconds; None: train the whole schedule

    def to_dict(self) -> dict:
        return asdict(self)


def resolve(config: TrainConfig, n_examples: int) -> Hyperparameters:
    epochs = auto_epochs(n_examples) if config.n_epochs == "auto" else config.n_epochs
    batch = (min(MAX_AUTO_BATCH, max(MIN_AUTO_BATCH, n_examples // EXAMPLES_PER_AUTO_BATCH))
             if config.batch_size == "auto" else config.batch_size)
    batch = min(batch, max(1, n_examples))
    multiplier = 1.0 if config.learning_rate_multiplier == "auto" else float(config.learning_rate_multiplier)
    spec = method_spec(config.method)
    beta = None
    if "beta" in spec.hyperparameters:
        beta = DEFAULT_BETA if config.beta == "auto" else float(config.beta)
    return Hyperparameters(
        n_epochs=epochs, batch_size=batch, learning_rate_multiplier=multiplier,
        learning_rate=spec.base_learning_rate["full" if config.full else "lora"] * multiplier, beta=beta,
        lora_rank=None if config.full else config.lora_rank,
        lora_alpha=None if config.full else (config.lora_alpha or 2 * config.lora_rank),
        time_budget=config.time_budget,
    )


def learning_rate_at(step: int, total_steps: int, peak: float) -> float:
    """Linear warm-up over the first 5% of steps, then linear decay to zero at ``total_steps``."""
    warmup = max(1, round(WARMUP_FRACTION * total_steps))
    if step < warmup:
        return peak * (step + 1) / warmup
    remaining = max(1, total_steps - warmup)
    return peak * max(0.0, (total_steps - step) / remaining)
