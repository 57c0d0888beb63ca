"""Settings for the service and the CLI, read from TGPLUS_* environment variables.

Reading happens when `Settings()` is called, never at import time, so tests
and embedding applications decide when (and with what environment) it runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODEL_PATH = Path("data/model")
DEFAULT_DATABASE_URL = "sqlite:///data/feedback.sqlite3"
# What a browser sends as Origin: scheme://host[:port], no path, no trailing slash.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s?#]+", re.IGNORECASE)
_ORIGINS_EXAMPLE = '["https://a.example", "http://localhost:3000"]'


class Settings(BaseSettings):
    """Everything an operator may set; each field is TGPLUS_<NAME> in the environment."""

    model_config = SettingsConfigDict(env_prefix="TGPLUS_", extra="ignore")

    model_path: Path | None = Field(
        default=None,
        description=f"Model directory to serve [default: {DEFAULT_MODEL_PATH} if it exists, "
        "else the model bundled with tgplus].",
    )
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
    # Limits by design: what one client can make the server hold, and for how long.
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1,
        description="Largest request body accepted, in bytes; larger ones get a 413 unread.",
    )
    max_concurrent_requests: int = Field(
        default=64,
        ge=1,
        description="Requests handled at once per worker; more get a 503 with Retry-After.",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        allow_inf_nan=False,
        description="Time a client has to send a request's line and headers (`tgplus serve`).",
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Longest request line plus headers, in bytes (`tgplus serve`).",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        allow_inf_nan=False,
        description="Time a client has to send a request's whole body.",
    )
    keep_alive_seconds: float = Field(
        default=5.0,
        gt=0,
        allow_inf_nan=False,
        description="How long an idle keep-alive connection stays open.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser, as a JSON list "
        '(["https://a.example"]); none by default.',
    )
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="Feedback store: sqlite:///path or postgresql://user:pass@host/db.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for feedback, deletion and reload; unset: those are off (404).",
    )
    record_predictions: bool = Field(
        default=False,
        description="Store every served prediction (text included) under a short id.",
    )
    quality_window: int = Field(
        default=1000, ge=1, description="Latest feedback rows the live quality metrics cover."
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        """A JSON list of origins, each as a browser sends it; anything else is refused
        (pydantic-settings' own JSON decoding fails with a traceback, and an origin with a
        path or a trailing slash would never match)."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(f"not a JSON list; write it as {_ORIGINS_EXAMPLE}") from None
        if isinstance(value, list):
            for number, origin in enumerate(value, start=1):
                if isinstance(origin, str) and origin != "*" and not _ORIGIN.fullmatch(origin):
                    raise ValueError(
                        f"origin {number} ({origin!r}) is not scheme://host[:port] "
                        f"(no path, no trailing slash); write them as {_ORIGINS_EXAMPLE}"
                    )
        return value

    @field_validator("api_token")
    @classmethod
    def _blank_token_is_no_token(cls, token: SecretStr | None) -> SecretStr | None:
        """An empty TGPLUS_API_TOKEN disables the guarded endpoints rather than opening them."""
        return token if token is not None and token.get_secret_value().strip() else None
