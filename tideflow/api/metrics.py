"""Prometheus metrics of the API, in a registry of its own (served at ``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ApiMetrics"]


class ApiMetrics:
    """Request counts and latencies by route template, auth failures, held and proxied triggers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tideflow_api_requests_total",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tideflow_api_request_duration_seconds",
            "Time to answer a request, by method and route template.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "tideflow_api_auth_failures_total",
            "Requests refused by authentication or authorization, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.held = Gauge(
            "tideflow_api_held_triggers",
            "Triggers waiting for a stopped runtime to start.",
            registry=self.registry,
        )
        self.triggers = Counter(
            "tideflow_api_triggers_total",
            "Triggers and run actions forwarded to runtimes, by outcome.",
            ["outcome"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
