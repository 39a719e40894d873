"""Run retention on the sandbox: old finished runs are deleted, runs that can still change are kept."""

from __future__ import annotations

import datetime as dt

from tests.integration.operator.conftest import Kube, Operator, workflow_manifest
from tests.support import wait_for
from tideflow.core.clock import format_time


def test_finished_runs_beyond_the_kept_count_are_deleted_oldest_first(operator: Operator, kube: Kube) -> None:
    operator.restart(
        TIDEFLOW_RUN_RETENTION_MAX_RUNS="2",
        TIDEFLOW_RUN_RETENTION_MIN_AGE_HOURS="0.5",
        TIDEFLOW_RUN_PRUNE_SECONDS="1",
    )
    kube.create_workflow(workflow_manifest("kept", deployed=False))
    finished = []
    start = operator.clock.now()
    for index, phase in enumerate(["Completed", "Failed", "Cancelled", "Completed", "Completed"]):
        name = f"kept-done-{index}"
        kube.create_run("kept", name)
        ended = format_time(start - dt.timedelta(minutes=10 - index))  # within the 7-day maximum age
        kube.patch_run_status(name, {"phase": phase, "completedAt": ended})
        finished.append(name)
    kube.create_run("kept", "kept-waiting")  # Pending: never pruned
    kube.create_run("kept", "kept-running")
    kube.set_run_phase("kept-running", "Running")

    def names() -> set[str]:
        return {run["metadata"]["name"] for run in kube.runs()}

    # Younger than the idempotency window (30 minutes here): nothing goes, however many there are.
    assert names() == {*finished, "kept-waiting", "kept-running"}
    operator.clock.advance(dt.timedelta(hours=1))
    wait_for(
        lambda: names() == {"kept-done-3", "kept-done-4", "kept-waiting", "kept-running"},
        timeout=30,
        what="the three oldest finished runs to be pruned",
    )
