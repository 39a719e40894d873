"""Operator settings, read once from ``TIDEFLOW_*`` environment variables at start-up."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator


class OperatorSettings(BaseModel):
    """Everything the operator's behaviour depends on besides the Workflow objects themselves."""

    model_config = ConfigDict(frozen=True)

    runtime_image: str = Field(
        default="ghcr.io/tideflow/tideflow:0.1.0", description="Image of runtime pods."
    )
    image_pull_policy: str = Field(default="IfNotPresent", pattern="^(Always|IfNotPresent|Never)$")
    runtime_command: tuple[str, ...] = Field(
        default=("python", "-m", "tideflow.runtime"), description="Command of the runtime container."
    )
    runtime_port: int = Field(default=8080, ge=1, le=65535)
    runtime_service_account: str = Field(default="tideflow-runtime")
    http_allowlist: str = Field(
        default="", description="Passed to runtimes: CIDRs/hosts HTTP nodes may reach."
    )
    namespaces: tuple[str, ...] = Field(default=(), description="Namespaces to watch; empty: all namespaces.")
    resync_seconds: float = Field(default=30.0, gt=0, description="How often every workflow is re-checked.")
    watch_server_timeout: int = Field(default=300, ge=10, description="Server-side watch timeout, seconds.")
    watch_client_timeout: int = Field(default=330, ge=10, description="Client-side watch timeout, seconds.")
    standalone: bool = Field(default=True, description="Run without peering (no standby replica).")
    peering_name: str = Field(default="tideflow")
    peering_priority: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="This replica's kopf peering priority (the highest is active); unset: a random one, "
        "so two replicas never tie (kopf pauses every operator of a peering with a tie).",
    )
    peering_lifetime: int = Field(
        default=60,
        ge=5,
        le=3600,
        description="Seconds a replica's peering keep-alive lasts (kopf's lifetime).",
    )
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="0 disables the metrics endpoint.")
    liveness_port: int = Field(default=8081, ge=0, le=65535, description="0 disables the liveness endpoint.")
    clock_file: str | None = Field(
        default=None,
        description="Tests only: read 'now' from this file (an RFC 3339 timestamp), not the system clock.",
    )
    max_concurrent_reconciles: int = Field(default=8, ge=1, le=256)
    run_retention_max_age_hours: float = Field(
        default=168, gt=0, description="Finished WorkflowRuns older than this are deleted (7 days)."
    )
    run_retention_max_runs: int = Field(
        default=1000, ge=1, description="Finished runs kept per workflow; older ones beyond it are deleted."
    )
    run_retention_min_age_hours: float = Field(
        default=24, ge=0, description="No run younger than this is deleted: the idempotency-key window."
    )
    run_prune_seconds: float = Field(
        default=300, gt=0, description="How often finished runs are pruned (0 < seconds)."
    )
    schedule_wake_lead_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="Start a scaled-to-zero runtime this long before a fire time.",
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("runtime_command", mode="before")
    @classmethod
    def _command(cls, value: object) -> object:
        if isinstance(value, str):
            parsed = json.loads(value) if value.strip().startswith("[") else value.split()
            return tuple(str(part) for part in parsed)
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Build from ``TIDEFLOW_<FIELD>`` variables, e.g. ``TIDEFLOW_RUNTIME_IMAGE``."""
        env = os.environ if environ is None else environ
        values = {
            name: env[f"TIDEFLOW_{name.upper()}"]
            for name in cls.model_fields
            if f"TIDEFLOW_{name.upper()}" in env
        }
        return cls.model_validate(values)
