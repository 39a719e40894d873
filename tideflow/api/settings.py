"""API settings, read once at start-up from ``TIDEFLOW_*`` environment variables.

``TIDEFLOW_API_PORT`` sets ``port``, ``TIDEFLOW_BOOTSTRAP_API_KEY`` sets ``bootstrap_api_key`` and so on:
each field below is read from ``TIDEFLOW_<FIELD NAME IN CAPITALS>``. ``docs/api.md`` lists them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["ApiSettings", "SettingsError"]


class SettingsError(ValueError):
    """The environment does not describe a usable API; the message names the variables."""


class ApiSettings(BaseModel):
    """Everything the API's behaviour depends on besides the cluster's objects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_host: str = Field(default="0.0.0.0", description="Address to listen on.")  # noqa: S104 - a server
    api_port: int = Field(default=8000, ge=0, le=65535, description="Port to listen on (0: any free port).")
    namespaces: tuple[str, ...] = Field(
        default=(), description="Organizations (namespaces) served; empty serves every namespace."
    )
    bootstrap_api_key: str | None = Field(
        default=None, min_length=16, max_length=256, description="A plain admin key accepted at start-up."
    )
    bootstrap_secret: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]+/[a-z0-9.-]+$",
        description="``namespace/name`` of a Secret whose data key ``api-key`` holds the admin key.",
    )
    bootstrap_org: str = Field(default="default", min_length=1, max_length=63)
    runtime_address: Literal["service", "pod"] = Field(
        default="service",
        description="How triggers reach a runtime: its Service (in a cluster) or its pod's IP (sandbox).",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    trigger_hold_seconds: float = Field(
        default=30.0, gt=0, le=600, description="How long a trigger waits for a stopped runtime to start."
    )
    max_held_triggers: int = Field(
        default=64, ge=1, le=100_000, description="Triggers held at once before answering 503."
    )
    operator_wait_seconds: float = Field(
        default=10.0, ge=0, le=120, description="How long deploy/stop/start wait for the operator's status."
    )
    sync_timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="How long a sync trigger or execute waits for the run."
    )
    key_cache_seconds: float = Field(
        default=30.0, ge=0, le=3600, description="How long a verified API key is trusted without a re-read."
    )
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        """Build from ``TIDEFLOW_<FIELD>`` variables; :class:`SettingsError` names the bad ones."""
        env = os.environ if env is None else env
        values = {
            name: env[f"TIDEFLOW_{name.upper()}"]
            for name in cls.model_fields
            if f"TIDEFLOW_{name.upper()}" in env
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"TIDEFLOW_{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
                for error in exc.errors()
            )
            raise SettingsError(problems) from None

    def serves(self, namespace: str) -> bool:
        """Whether requests for this organization are served."""
        return not self.namespaces or namespace in self.namespaces
