"""Run retention as a pure function: what is kept, what is deleted, in which order, how many at once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tideflow.operator.retention import Retention, prune

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def run(
    name: str, age_hours: float, phase: str | None = "Completed", workflow: str = "w", **status: Any
) -> dict[str, Any]:
    created = NOW - dt.timedelta(hours=age_hours)
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "labels": {"tideflow.io/workflow": workflow},
        },
        "status": {"phase": phase, **status} if phase else {},
    }
    return body


def test_finished_runs_past_the_max_age_go_oldest_first() -> None:
    runs = [run("new", 30), run("old", 200), run("older", 300), run("fresh", 1)]
    assert prune(runs, NOW, Retention(max_age=dt.timedelta(days=7))) == ["older", "old"]


def test_runs_that_can_still_change_are_never_deleted() -> None:
    runs = [
        run(f"r{i}", 1000, phase)
        for i, phase in enumerate([None, "Pending", "Running", "AwaitingInteraction"])
    ]
    assert prune(runs, NOW, Retention()) == []
    assert prune([run("done", 1000, "Failed"), run("gone", 1000, "Cancelled")], NOW, Retention()) == [
        "done",
        "gone",
    ]


def test_beyond_max_runs_per_workflow_the_oldest_finished_go_but_never_inside_the_idempotency_window() -> (
    None
):
    runs = [run(f"a{i}", 25 + i) for i in range(5)] + [
        run(f"b{i}", 25 + i, workflow="other") for i in range(2)
    ]
    runs += [run(f"young{i}", 2) for i in range(10)]  # more than max_runs, but younger than min_age
    assert prune(runs, NOW, Retention(max_runs=3)) == ["a4", "a3"]


def test_the_completion_time_counts_for_the_age_and_the_batch_bounds_a_pass() -> None:
    ended = (NOW - dt.timedelta(hours=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    late = run("long-runner", 500, completedAt=ended)  # created 500 h ago, finished 10 h ago: kept
    many = [run(f"x{i:03d}", 400 + i) for i in range(20)]
    assert prune([late], NOW, Retention()) == []
    assert prune(many, NOW, Retention(batch=5)) == ["x019", "x018", "x017", "x016", "x015"]
