"""Prometheus metrics of one runtime process, served at ``GET /metrics``.

Each :class:`RuntimeMetrics` has its own registry (several runtimes can live in one test process), and
every series carries the ``workflow`` label so that the pods of many workflows can be aggregated.

| metric | type | labels |
| --- | --- | --- |
| ``tideflow_runtime_runs_total`` | counter | ``phase``: runs this process finished, by final phase |
| ``tideflow_runtime_runs_in_flight`` | gauge | runs executing in this process |
| ``tideflow_runtime_queue_depth`` | gauge | Pending runs of the workflow waiting to be claimed |
| ``tideflow_runtime_node_duration_seconds`` | histogram | ``type``, ``status`` |
| ``tideflow_runtime_trigger_latency_seconds`` | histogram | ``endpoint`` (trigger, webhook), ``mode`` |
| ``tideflow_runtime_claims_total`` | counter | ``result``: won, conflict, reclaimed, error |
| ``tideflow_runtime_status_writes_total`` | counter | ``result``: ok, conflict, error |
| ``tideflow_runtime_rejected_requests_total`` | counter | ``reason``: body_too_large, draining, ... |
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["RuntimeMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_NODE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)


class RuntimeMetrics:
    """The runtime's metrics, registered in a registry of their own."""

    def __init__(self, workflow: str, registry: CollectorRegistry | None = None) -> None:
        self.workflow = workflow
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "tideflow_runtime_runs_total",
            "Runs finished by this runtime, by phase.",
            ["workflow", "phase"],
            registry=r,
        )
        self.runs_in_flight = Gauge(
            "tideflow_runtime_runs_in_flight", "Runs executing in this runtime.", ["workflow"], registry=r
        )
        self.queue_depth = Gauge(
            "tideflow_runtime_queue_depth",
            "Pending runs of the workflow this runtime knows of, waiting to be claimed.",
            ["workflow"],
            registry=r,
        )
        self.node_duration = Histogram(
            "tideflow_runtime_node_duration_seconds",
            "Duration of finished nodes (all attempts), by node type and status.",
            ["workflow", "type", "status"],
            buckets=_NODE_BUCKETS,
            registry=r,
        )
        self.trigger_latency = Histogram(
            "tideflow_runtime_trigger_latency_seconds",
            "Time from receiving a trigger to answering it (the run is stored first).",
            ["workflow", "endpoint", "mode"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.claims = Counter(
            "tideflow_runtime_claims_total",
            "Attempts to claim a run, by result.",
            ["workflow", "result"],
            registry=r,
        )
        self.status_writes = Counter(
            "tideflow_runtime_status_writes_total",
            "Writes of run status, by result.",
            ["workflow", "result"],
            registry=r,
        )
        self.rejected = Counter(
            "tideflow_runtime_rejected_requests_total",
            "Requests refused before a run was created, by reason.",
            ["workflow", "reason"],
            registry=r,
        )
        self.runs_in_flight.labels(workflow).set(0)
        self.queue_depth.labels(workflow).set(0)

    def run_finished(self, phase: str) -> None:
        self.runs.labels(self.workflow, phase).inc()

    def node_finished(self, node_type: str, status: str, seconds: float) -> None:
        self.node_duration.labels(self.workflow, node_type, status).observe(max(0.0, seconds))

    def trigger_answered(self, endpoint: str, mode: str, seconds: float) -> None:
        self.trigger_latency.labels(self.workflow, endpoint, mode).observe(max(0.0, seconds))

    def claim(self, result: str) -> None:
        self.claims.labels(self.workflow, result).inc()

    def status_write(self, result: str) -> None:
        self.status_writes.labels(self.workflow, result).inc()

    def reject(self, reason: str) -> None:
        self.rejected.labels(self.workflow, reason).inc()

    def set_in_flight(self, count: int) -> None:
        self.runs_in_flight.labels(self.workflow).set(count)

    def set_queue_depth(self, count: int) -> None:
        self.queue_depth.labels(self.workflow).set(count)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
