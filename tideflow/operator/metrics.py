"""The operator's Prometheus metrics (served on ``TIDEFLOW_METRICS_PORT``, 9090 by default)."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("tideflow_operator_reconciles_total", "Workflow reconciles by outcome.", ["outcome"])
RECONCILE_SECONDS = Histogram("tideflow_operator_reconcile_duration_seconds", "Duration of one reconcile.")
CHILD_WRITES = Counter("tideflow_operator_child_writes_total", "Writes to owned objects.", ["kind", "action"])
EVENTS = Counter("tideflow_operator_events_total", "Kubernetes Events recorded on Workflows.", ["reason"])
WORKFLOWS = Gauge(
    "tideflow_workflows", "Workflows by state and deployment status.", ["state", "deployment_status"]
)


def observe_workflows(workflows: list[dict[str, Any]]) -> None:
    """Refresh the ``tideflow_workflows`` gauge from a full listing."""
    counts = Tally(
        (
            (w.get("spec") or {}).get("state", "Draft"),
            (w.get("status") or {}).get("deploymentStatus", "Unknown"),
        )
        for w in workflows
    )
    WORKFLOWS.clear()
    for (state, deployment_status), count in counts.items():
        WORKFLOWS.labels(state, deployment_status).set(count)
