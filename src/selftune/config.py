"""Settings read from the environment (prefix ``SELFTUNE_``), so the CLI, the server and tests agree.

Settings are read afresh on every call rather than cached at import, so a test (or a user's script)
can point ``SELFTUNE_HOME`` somewhere else and every later call sees it.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where `selftune serve` listens by default, and so where the commands that talk to it look first.
LOCAL_BASE_URL = "http://127.0.0.1:8000/v1"


class ServeWeights(str, Enum):
    """What the embedded engine's decode steps multiply by (``SELFTUNE_SERVE_WEIGHTS``)."""

    FULL = "full"  # the weights in serve_dtype's precision: answers equal transformers'
    INT8 = "int8"  # per-row int8 for decode steps (selftune.serve.int8_weights): faster, answers can differ


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SELFTUNE_", extra="ignore")

    home: Path = Field(
        default=Path("~/.selftune"),
        description="Where selftune keeps converted models, calibrations, the database and artifacts.",
    )

    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the job queue; default SQLite (WAL) in HOME. "
                          "postgresql://... lets several workers on several machines share one queue.")
    api_keys: str | None = Field(
        None, description="'key1:org-a,key2:org-b': bearer keys, each bound to an organisation. "
                          "Unset: local mode (one organisation, loopback only).")
    max_upload_bytes: int = Field(512 * 1024**2, ge=1, description="Largest accepted upload (the hosted limit).")
    concurrent_jobs: int = Field(1, ge=1, description="Jobs one worker trains at once; 1 suits a CPU.")
    base_models: str | None = Field(
        None, description="Extra base models the API offers, 'name=folder-or-hub-id,...', beside the "
                          "bundled ones. Names may not contain ':' (it separates the parts of ft: ids).")
    aliases: str | None = Field(
        None, validation_alias="SELFTUNE_MODEL_ALIASES",
        description="Hosted model names mapped to base models of this server, 'hosted-name=base-model,...' "
                    "(e.g. gpt-4.1-nano-2025-04-14=smollm2-135m-instruct), so scripts written for the hosted "
                    "service run unchanged. Name to name: the target must be a bundled model or one of "
                    "SELFTUNE_BASE_MODELS.")
    job_lease_seconds: float = Field(
        30.0, gt=0, description="A running job whose worker has not been heard from for this long is "
                                "taken over by another worker (after a crash), resuming from its checkpoint.")
    metrics_every: int = Field(10, ge=1, description="Relay a training-step metrics event every N steps.")
    reserved_cores: int = Field(
        0, ge=0, description="Cores selftune leaves to other programs: training and serving share out the rest "
                             "(selftune.threads; `selftune doctor` shows the decision).")

    serve_engine: str = Field("auto", pattern="^(auto|embedded|vllm)$",
                              description="Serving engine; auto: vLLM where it is installed and a CUDA GPU is "
                                          "present, else the embedded transformers + PEFT engine.")
    serve_dtype: str = Field("auto", pattern="^(auto|bf16|fp32)$",
                             description="Serving precision; auto: bf16 where the hardware has it.")
    serve_weights: ServeWeights = Field(
        ServeWeights.FULL,
        description="Weights the embedded engine serves with: full (serve_dtype's precision, answers equal "
                    "transformers') or int8 (per-row int8 for decode steps: about 2x one client's tokens/s on an "
                    "fp32 CPU, 1.3x in bf16; answers can differ slightly; docs/api.md).")
    serve_kv_tokens: int = Field(32768, ge=256, description="Tokens the serving KV cache holds, all requests together.")
    serve_max_adapters: int = Field(8, ge=1, description="LoRA adapters kept in memory (least recently used evicted).")
    serve_max_queued: int = Field(
        64, ge=1, description="Chat completion sequences that may wait for the engine (admitted, no token yet) "
                              "at once; past that a new request gets a 429 with Retry-After at once, instead "
                              "of queueing without end. Bounds waiting time and the prompts held in memory.")
    batch_concurrency: int = Field(
        8, ge=1, description="Requests of /v1/batches answered at once by this server. Batches run behind "
                             "interactive requests (none is sent while one waits for the engine) and behind "
                             "fine-tuning jobs training on this machine.")

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home.expanduser() / 'selftune.db'}"

    @property
    def blobs_dir(self) -> Path:
        """Uploaded files and result files, one blob per file id (never a user-given name)."""
        return self.home.expanduser() / "files"

    @property
    def jobs_dir(self) -> Path:
        """One folder per fine-tuning job: its config, events, checkpoints and output."""
        return self.home.expanduser() / "jobs"

    def organisations(self) -> dict[str, str] | None:
        """API key -> organisation, or None in local mode. An organisation becomes part of
        ft:BASE:ORG:SUFFIX:JOBID model ids, so it may not contain ':'."""
        if not self.api_keys:
            return None
        return _pairs("SELFTUNE_API_KEYS", self.api_keys, ":", "key:organisation", value_named="organisation")

    def extra_base_models(self) -> dict[str, str]:
        """Name -> model source (folder or hub id) from SELFTUNE_BASE_MODELS."""
        return _pairs("SELFTUNE_BASE_MODELS", self.base_models, "=", "name=folder-or-hub-id")

    def model_aliases(self) -> dict[str, str]:
        """Hosted name -> base model name, from SELFTUNE_MODEL_ALIASES (checked against the offered
        models by :func:`selftune.models.catalog.base_models`)."""
        return _pairs("SELFTUNE_MODEL_ALIASES", self.aliases, "=", "hosted-name=base-model", value_named="base model")

    @property
    def models_dir(self) -> Path:
        """Converted and downloaded base models (one folder each)."""
        return self.home.expanduser() / "models"

    @property
    def calibration_dir(self) -> Path:
        """Measured training speed per model and machine, for time estimates."""
        return self.home.expanduser() / "calibration"


def get_settings() -> Settings:
    return Settings()


def _pairs(setting: str, text: str | None, separator: str, shape: str,
           value_named: str | None = None) -> dict[str, str]:
    """``"a=b, c=d"`` -> ``{"a": "b", "c": "d"}`` for a list setting, refusing an item without both parts.
    Names (and values when ``value_named``) may not contain ':', which separates the parts of ft: ids."""
    hint = "" if separator == ":" else " (no ':' in names)"
    pairs = {}
    for item in filter(None, (i.strip() for i in (text or "").split(","))):  # a trailing comma is harmless
        name, sep, value = (part.strip() for part in item.partition(separator))
        if not sep or not name or not value or ":" in name:
            raise ValueError(f"{setting}: {item!r} is not '{shape}'{hint}")
        if value_named and ":" in value:
            raise ValueError(f"{setting}: {value_named} {value!r} contains ':'")
        pairs[name] = value
    return pairs
