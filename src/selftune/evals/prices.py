"""What 1,000 requests cost: on this machine from the seconds they took, or at a hosted model's
per-token prices for comparison."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from selftune.errors import SelftuneError

# A 2-vCPU cloud VM of the kind this CPU figure was measured on costs about this much an hour
# (on-demand, 2026); override with --hourly-price for your machine.
DEFAULT_HOURLY_PRICE = 0.10


class TokenPrice(BaseModel):
    """A hosted model's prices, to show what the same tokens would cost there."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="The name the report's column and the summary use, e.g. gpt-4.1-mini.")
    input_per_million: float = Field(ge=0, description="US dollars per million prompt tokens.")
    output_per_million: float = Field(ge=0, description="US dollars per million completion tokens.")

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        """Dollars for these tokens."""
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6

    def per_thousand_requests(self, prompt_tokens: float, completion_tokens: float) -> float:
        """Dollars for 1,000 requests of this many tokens each."""
        return 1000 * self.cost(prompt_tokens, completion_tokens)


def parse_price(spec: str) -> TokenPrice:
    """``NAME=INPUT:OUTPUT`` in US dollars per million tokens, e.g. ``gpt-4.1-mini=0.40:1.60``."""
    match = re.fullmatch(r"([^=]+)=([0-9.]+):([0-9.]+)", spec.strip())
    if not match:
        raise SelftuneError(f"--price {spec!r}: expected NAME=INPUT:OUTPUT (dollars per million tokens), "
                            "e.g. gpt-4.1-mini=0.40:1.60")
    return TokenPrice(name=match.group(1), input_per_million=float(match.group(2)),
                      output_per_million=float(match.group(3)))


def local_cost_per_thousand(seconds_per_request: float, hourly_price: float) -> float:
    """The machine's time for 1,000 requests at the throughput measured (requests overlap under
    concurrency, so this is wall time divided by requests, not latency)."""
    return 1000 * seconds_per_request * hourly_price / 3600
