"""The settings of ``selftune migrate capture`` and ``compare``, typed, described and checked in one
place; the command's options take their defaults and help text from these fields."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from selftune.evals.prices import DEFAULT_HOURLY_PRICE, TokenPrice
from selftune.migrate.hosted import HOSTED_BASE_URL


class CaptureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The hosted fine-tuned model (or checkpoint) whose behaviour to capture.")
    out: Path = Field(description="The training file to write (chat JSONL).")
    base_url: str = Field(HOSTED_BASE_URL, description="The service the model answers on.")
    api_key: str | None = Field(None, description="The service's API key (default: OPENAI_API_KEY).")
    from_stored: bool = Field(False, description="Use the model's stored completions (store: true traffic).")
    metadata: dict[str, str] = Field(default_factory=dict, description="key=value: only stored completions with "
                                                                       "this metadata.")
    prompts: Path | None = Field(None, description="Also send these prompts to the model (chat JSONL or a prompt "
                                                   "a line); answers are cached so a rerun never pays twice.")
    system: str | None = Field(None, description="A system message for prompts that have none (use the one "
                                                 "your application sends).")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
    max_tokens: int = Field(1024, ge=1, description="Answer length cap per request.")
    keep_truncated: bool = Field(False, description="Keep answers cut off by the length cap.")
    plan: Path | None = Field(None, description="Record the file in this migration plan, for the job that made "
                                                "the model (replay trains on it when the original data is gone).")

    @model_validator(mode="after")
    def _a_source(self) -> CaptureConfig:
        if not self.from_stored and self.prompts is None:
            raise ValueError("say where the behaviour comes from: --from-stored, --prompts FILE, or both")
        return self


class CompareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old: str = Field(description="The old model as MODEL@URL (URL: its OpenAI-compatible endpoint; without @URL, "
                                 "the hosted service).")
    new: str = Field(description="The new model on the selftune server (--base-url), e.g. its ft: id.")
    data: Path = Field(description="Held-out chat JSONL; each example's last assistant message is the reference.")
    old_api_key: str | None = Field(None, description="The old endpoint's API key (default: OPENAI_API_KEY).")
    old_price: TokenPrice | None = Field(None, description="The old model's price, NAME=IN:OUT dollars per million "
                                                           "tokens (default: the hosted list price of its base).")
    base_url: str | None = Field(None, description="The new model's server (default: the local selftune server, "
                                                   "started if none is running).")
    api_key: str | None = Field(None, description="The new model's server's API key.")
    graders: list[str] = Field(default_factory=list, description="As for `selftune eval` (default: classification "
                                                                 "when the answers are labels, else normalized).")
    limit: int | None = Field(None, ge=1, description="Compare on a seeded random sample of this many examples.")
    seed: int = Field(0, description="Seeds the sample and the bootstrap intervals.")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once, per model.")
    max_tokens: int | None = Field(None, ge=1, description="Answer length cap (default: from the longest reference).")
    hourly_price: float = Field(DEFAULT_HOURLY_PRICE, ge=0, description="Dollars an hour this machine costs.")
    out: Path = Field(Path("compare-report"), description="Where report.html, report.json and results.jsonl go.")
