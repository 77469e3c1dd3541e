"""The settings of ``selftune distill``, typed, described and checked in one place: from a teacher
(:class:`DistillConfig`) or from stored completions (:class:`StoredDistillConfig`).

The command's options take their defaults and help text from these fields.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from selftune.config import LOCAL_BASE_URL
from selftune.evals.prices import TokenPrice

OUT_DESCRIPTION = "The training file to write (chat JSONL)."
API_KEY_DESCRIPTION = "The teacher's API key."
KEEP_TRUNCATED_DESCRIPTION = "Keep answers cut off by --max-tokens."


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teacher_base_url: str = Field(description="The teacher's OpenAI-compatible endpoint.")
    teacher_model: str = Field(description="The teacher model.")
    prompts: Path = Field(description="Chat JSONL (a final assistant answer is dropped and kept as the grader's "
                                      "reference) or text, a prompt a line.")
    out: Path = Field(description=OUT_DESCRIPTION)
    api_key: str | None = Field(None, description=API_KEY_DESCRIPTION)
    system: str | None = Field(None, description="A system message for prompts that have none.")
    samples: int = Field(1, ge=1, description="Answers per prompt; with --grader the best is kept.")
    temperature: float | None = Field(None, ge=0, le=2, description="Default: 0 for one sample, 0.7 for several.")
    max_tokens: int = Field(1024, ge=1, description="Answer length cap per request.")
    graders: list[str] = Field(default_factory=list, description="Scores answers (see `selftune eval`) for "
                                                                 "best-of-K and --min-score.")
    min_score: float | None = Field(None, description="Drop prompts whose best answer scores lower.")
    keep_truncated: bool = Field(False, description=KEEP_TRUNCATED_DESCRIPTION)
    concurrency: int = Field(4, ge=1, description="Requests in flight at once (without --batch).")
    batch: bool = Field(False, description="Send the requests through the teacher's Batch API (/v1/batches, which "
                                           "the hosted service charges half for) as one batch instead of one by "
                                           "one; its answers are cached when it ends (Ctrl-C cancels it and keeps "
                                           "those that came back).")
    timeout: float = Field(120.0, ge=1, description="Seconds per request.")
    max_retries: int = Field(5, ge=0, description="Retries on 429, 5xx and connection errors, with exponential "
                                                  "backoff.")
    cache: Path | None = Field(None, description="The resumable answer cache (default: OUT.cache.jsonl).")
    prices: list[TokenPrice] = Field(default_factory=list, description="NAME=INPUT:OUTPUT dollars per million "
                                                                       "tokens: the teacher's cost in the summary.")

    @model_validator(mode="after")
    def _check(self) -> DistillConfig:
        if self.min_score is not None and not self.graders:
            raise ValueError("--min-score needs a --grader to score answers with")
        return self

    @property
    def cache_path(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.out).with_suffix(".cache.jsonl")

    @property
    def sampling_temperature(self) -> float:
        return self.temperature if self.temperature is not None else (0.0 if self.samples == 1 else 0.7)


class StoredDistillConfig(BaseModel):
    """A training file from completions stored with ``store: true`` on a selftune server."""

    model_config = ConfigDict(extra="forbid")

    out: Path = Field(description=OUT_DESCRIPTION)
    base_url: str = Field(LOCAL_BASE_URL, description="The server holding the stored completions.")
    api_key: str | None = Field(None, description="The server's API key.")
    metadata: dict[str, str] = Field(default_factory=dict, description="key=value: only stored completions with "
                                                                       "this metadata.")
    model: str | None = Field(None, description="Only stored completions of this model.")
    keep_truncated: bool = Field(False, description=KEEP_TRUNCATED_DESCRIPTION)
