"""Can the new model replace the old one? Both answer the same held-out prompts, each on its own
endpoint, in one evaluation: how often the new one gives the old one's answer, each one's quality
against the references, prompt tokens, latency, and cost per 1,000 requests (the hosted model at its
per-token price, the local one from the time it took here)."""

from __future__ import annotations

import os
from collections.abc import Callable

from selftune.errors import SelftuneError
from selftune.evals.config import EvalConfig, ModelEndpoint
from selftune.evals.results import EvalReport
from selftune.migrate.config import CompareConfig
from selftune.migrate.hosted import HOSTED_BASE_URL, fine_tuned_price


def split_endpoint(spec: str) -> tuple[str, str]:
    """``MODEL@URL`` -> (model, url); a bare model is on the hosted service. Model ids never hold '@'."""
    model, at, url = spec.rpartition("@")
    if not at:
        return spec, HOSTED_BASE_URL
    if not model or not url.startswith(("http://", "https://")):
        raise SelftuneError(f"--old {spec!r}: expected MODEL@URL with an http(s) URL, "
                            "e.g. ft:gpt-4.1-nano-2025-04-14:acme:intents:abc123@https://api.openai.com/v1")
    return model, url


def compare(config: CompareConfig, progress: Callable | None = None) -> EvalReport:
    from selftune.evals.run import evaluate

    old_model, old_url = split_endpoint(config.old)
    if old_model == config.new:
        raise SelftuneError("--old and --new name the same model id: the report tells models apart by id")
    price = config.old_price or fine_tuned_price(old_model)
    old_key = config.old_api_key or os.environ.get("OPENAI_API_KEY")
    if old_key is None:
        raise SelftuneError("--old-api-key (or OPENAI_API_KEY) is needed to ask the old model")
    models = [ModelEndpoint(model=old_model, base_url=old_url, api_key=old_key, price=price),
              ModelEndpoint(model=config.new)]
    return evaluate(EvalConfig(
        data=config.data, models=models, graders=config.graders, base_url=config.base_url, api_key=config.api_key,
        concurrency=config.concurrency, limit=config.limit, seed=config.seed, max_tokens=config.max_tokens,
        hourly_price=config.hourly_price, agreement_with=old_model, out=config.out), progress)
