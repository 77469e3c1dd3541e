"""Settings read from the environment (prefix ``SELFTUNE_``), so the CLI, the server and tests agree.

Settings are read afresh on every call rather than cached at import, so a test (or a user's script)
can point ``SELFTUNE_HOME`` somewhere else and every later call sees it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SELFTUNE_", extra="ignore")

    home: Path = Field(
        default=Path("~/.selftune"),
        description="Where selftune keeps converted models, calibrations, the database and artifacts.",
    )

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
