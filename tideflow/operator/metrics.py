"""The operator's Prometheus metrics (served on ``TIDEFLOW_METRICS_PORT``, 9090 by default)."""

from __future__ import annotations

from collections import Counter as Tally
from collections import OrderedDict
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from tideflow.core.clock import parse_time

RECONCILES = Counter("tideflow_operator_reconciles_total", "Workflow reconciles by outcome.", ["outcome"])
RECONCILE_RETRIES = Counter(
    "tideflow_operator_reconcile_retries_total",
    "Failed reconciles re-queued with back-off (each failure counts once).",
)
RECONCILES_COALESCED = Counter(
    "tideflow_operator_reconciles_coalesced_total",
    "Reconcile requests that joined one already waiting for its turn (no reconcile of their own).",
)
RECONCILE_SECONDS = Histogram("tideflow_operator_reconcile_duration_seconds", "Duration of one reconcile.")
CHILD_WRITES = Counter("tideflow_operator_child_writes_total", "Writes to owned objects.", ["kind", "action"])
EVENTS = Counter("tideflow_operator_events_total", "Kubernetes Events recorded on Workflows.", ["reason"])
SCHEDULE_RUNS = Counter("tideflow_schedule_runs_total", "WorkflowRuns created for schedule fire times.")
SCHEDULE_SKIPPED = Counter(
    "tideflow_schedule_skipped_total", "Schedule fire times skipped, by reason.", ["reason"]
)
SCHEDULE_LATENESS = Histogram(
    "tideflow_schedule_lateness_seconds",
    "A scheduled run's startedAt minus its scheduledTime.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900),
)
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


_LATENESS_SEEN: OrderedDict[str, None] = OrderedDict()


def observe_lateness(uid: str, scheduled_time: Any, started_at: Any) -> None:
    """Record a scheduled run's lateness once, when its ``startedAt`` first appears."""
    if not (isinstance(scheduled_time, str) and isinstance(started_at, str)) or uid in _LATENESS_SEEN:
        return
    try:
        lateness = (parse_time(started_at) - parse_time(scheduled_time)).total_seconds()
    except ValueError:
        return
    _LATENESS_SEEN[uid] = None
    while len(_LATENESS_SEEN) > 10_000:
        _LATENESS_SEEN.popitem(last=False)
    SCHEDULE_LATENESS.observe(max(lateness, 0.0))
