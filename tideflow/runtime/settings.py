"""Runtime settings, read once at start-up from the environment the operator gives the runtime pod.

The operator sets ``TIDEFLOW_WORKFLOW``, ``TIDEFLOW_NAMESPACE``, ``TIDEFLOW_POD_NAME``, ``POD_IP``,
``TIDEFLOW_PORT``, ``TIDEFLOW_DEFINITION_PATH`` and ``TIDEFLOW_HTTP_ALLOWLIST`` (read by the SSRF guard
itself); everything else has a default and can be tuned with a ``TIDEFLOW_*`` variable of the same name
(``sync_timeout_seconds`` is ``TIDEFLOW_SYNC_TIMEOUT_SECONDS``). ``docs/runtime.md`` lists them all.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["SERVICE_ACCOUNT_NAMESPACE", "RuntimeSettings", "SettingsError"]

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
"""Where a pod finds its namespace when ``TIDEFLOW_NAMESPACE`` is not set."""


class SettingsError(ValueError):
    """The environment does not describe a usable runtime; the message names the variables."""


class RuntimeSettings(BaseModel):
    """Everything the runtime's behaviour depends on besides the definition and the cluster's objects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow: str = Field(min_length=1, max_length=63, description="Name of the Workflow served.")
    namespace: str = Field(default="default", min_length=1, max_length=63)
    pod_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=253,
        description="Written to status.claimedBy of the runs this runtime executes.",
    )
    host: str = Field(default="0.0.0.0", description="Address the server binds: POD_IP when set.")  # noqa: S104
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port (tests).")
    definition_path: Path = Field(default=Path("/etc/tideflow/definition.json"))
    sync_timeout_seconds: float = Field(
        default=300.0, gt=0, le=3600, description="Longest a sync trigger or a webhook waits for its run."
    )
    max_body_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Larger request bodies are refused with 413 (a run's inputs plus its status budget must "
        "stay far under the 1 MiB object limit).",
    )
    drain_seconds: float = Field(
        default=25.0, ge=0, description="After SIGTERM, how long runs in flight may finish before hand-back."
    )
    claim_lease_seconds: float = Field(
        default=60.0, gt=0, description="A Running run whose claim is older than this is reclaimable."
    )
    status_interval_seconds: float = Field(
        default=0.5, ge=0, description="Least time between two progress writes of one run's status."
    )
    status_budget_bytes: int = Field(
        default=256 * 1024, ge=16 * 1024, le=900 * 1024, description="Largest serialized run status."
    )
    max_concurrent_runs: int = Field(default=16, ge=1, le=10_000, description="Runs executed at once.")
    parallel_claims: int = Field(
        default=1, ge=1, le=64, description="Claim writes in flight at once (claims start in claim order)."
    )
    activity_interval_seconds: float = Field(
        default=30.0, ge=0, description="Least time between two lastActivityAt reports."
    )
    run_timeout_seconds: float | None = Field(
        default=None, gt=0, description="Time limit of one execution (or resumption); none by default."
    )
    origin_grace_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a replica leaves a Pending run another replica created (and is about to "
        "claim) before it may claim it itself.",
    )
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeSettings:
        """Read the settings; :class:`SettingsError` names every variable that is missing or wrong."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            variable = _variable(name)
            if env.get(variable, "") != "":
                values[name] = env[variable]
        if env.get("POD_IP"):
            values["host"] = env["POD_IP"]
        if "namespace" not in values and SERVICE_ACCOUNT_NAMESPACE.is_file():
            values["namespace"] = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        if "log_level" in values:
            values["log_level"] = str(values["log_level"]).upper()
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{_variable(str(error['loc'][0])) if error['loc'] else 'settings'}: {error['msg']}"
                for error in exc.errors()
            )
            raise SettingsError(f"invalid runtime settings: {problems}") from None


def _variable(field_name: str) -> str:
    if field_name == "host":
        return "TIDEFLOW_HOST"
    return f"TIDEFLOW_{field_name.upper()}"
