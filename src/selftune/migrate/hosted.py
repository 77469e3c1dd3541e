"""What selftune knows of the hosted service: where it answers, and what a fine-tuned model's answers
cost there (for `migrate compare`'s cost column)."""

from __future__ import annotations

from selftune.evals.prices import TokenPrice

HOSTED_BASE_URL = "https://api.openai.com/v1"

# Inference list prices of fine-tuned models, US dollars per million tokens (input, output), by the base
# model's name prefix, as the hosted service published them in 2025-2026. Your invoice may differ
# (cached input, Batch API at half price): `--price NAME=IN:OUT` overrides.
FINE_TUNED_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4.1-nano": (0.20, 0.80),
    "gpt-4.1-mini": (0.80, 3.20),
    "gpt-4.1": (3.00, 12.00),
    "gpt-4o-mini": (0.30, 1.20),
    "gpt-4o": (3.75, 15.00),
    "gpt-3.5-turbo": (3.00, 6.00),
}


def fine_tuned_price(model: str) -> TokenPrice | None:
    """The list price of a hosted fine-tuned model (``ft:BASE:...``), named by its family, or None when unknown."""
    base = model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 1 else model
    for prefix in sorted(FINE_TUNED_PRICES, key=len, reverse=True):  # gpt-4.1-nano before gpt-4.1
        if base.startswith(prefix):
            cost_in, cost_out = FINE_TUNED_PRICES[prefix]
            return TokenPrice(name=f"{prefix} fine-tune list price", input_per_million=cost_in,
                              output_per_million=cost_out)
    return None
