"""Settings for the service and the CLI, read from TGPLUS_* environment variables.

Reading happens when `Settings()` is called, never at import time, so tests
and embedding applications decide when (and with what environment) it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_PATH = Path("data/model")


class Settings(BaseSettings):
    """Everything an operator may set; each field is TGPLUS_<NAME> in the environment."""

    model_config = SettingsConfigDict(env_prefix="TGPLUS_", extra="ignore")

    model_path: Path = Field(default=DEFAULT_MODEL_PATH, description="Model directory to serve.")
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the server listens on.")
    workers: int = Field(default=1, ge=1, le=64, description="Server worker processes.")
    max_description_chars: int = Field(
        default=5000, ge=1, description="Longest description accepted, in characters."
    )
    max_batch_size: int = Field(
        default=256, ge=1, description="Most descriptions in one batch request."
    )
    max_explain_batch_size: int = Field(
        default=32, ge=1, description="Most descriptions in one batch request with explain=true."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Logging level: debug, info, warning, error."
    )
