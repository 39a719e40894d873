"""The cancel request annotation (``tideflow.io/cancel-requested``) against a real runtime process.

The operator sets it on a Running run under ``concurrencyPolicy: Replace`` and the API for a cancel
request: the runtime executing the run stops it and records it Cancelled with the annotation's reason;
a Pending run that carries it is recorded Cancelled without ever being claimed or executed.
"""

from __future__ import annotations

from typing import Any

from tests.integration.runtime.conftest import Echo, Kube, Runtimes, finished_writes
from tests.integration.runtime.test_durability import interrupted
from tests.support import wait_for

JSON = dict[str, Any]
CANCEL = "tideflow.io/cancel-requested"
MERGE = {"Content-Type": "application/merge-patch+json"}


def annotate(kube: Kube, name: str, value: str) -> None:
    response = kube.http.patch(
        kube.path("/apis/tideflow.io/v1alpha1/namespaces/{ns}/workflowruns", name),
        json={"metadata": {"annotations": {CANCEL: value}}},
        headers=MERGE,
    )
    assert response.status_code == 200, response.text


def test_the_cancel_annotation_stops_a_running_run_and_keeps_a_pending_one_from_running(
    runtimes: Runtimes, kube: Kube, echo: Echo
) -> None:
    definition = interrupted(echo, 60)
    runtimes.create_workflow("cancels", definition)
    # Created before any runtime runs, and already asked to be cancelled: never claimed, never executed.
    kube.create_run("cancels", "cancels-unwanted", priority=10)
    annotate(kube, "cancels-unwanted", "true")
    since = kube.resource_version()

    runtime = runtimes.start("cancels", definition, pod="cancels-a")
    name = runtime.post("/trigger", json={}).json()["runId"]
    wait_for(lambda: echo.paths()[f"/before/{name}"] == 1, what="the run to reach its 60 s delay")
    annotate(kube, name, "Replaced by a newer scheduled run (concurrencyPolicy Replace).")

    stopped = kube.wait_phase(name, "Cancelled", "Completed", "Failed", timeout=20)["status"]
    unwanted = kube.wait_phase("cancels-unwanted", "Cancelled", "Completed", "Failed", timeout=20)["status"]
    assert runtime.terminate() == 0

    assert stopped["phase"] == "Cancelled", stopped
    assert stopped["error"] == "Replaced by a newer scheduled run (concurrencyPolicy Replace)."
    assert stopped["claimedBy"] == "cancels-a"
    assert stopped["completedAt"]
    assert {n["nodeId"]: n["status"] for n in stopped["nodes"]} == {
        "start": "completed",
        "before": "completed",
        "wait": "cancelled",
        "after": "pending",  # never started
    }
    assert echo.paths()[f"/after/{name}"] == 0
    assert len(finished_writes(kube.history(since), name)) == 1

    assert unwanted["phase"] == "Cancelled", unwanted
    assert unwanted["error"] == "cancelled by request"
    assert "claimedBy" not in unwanted
    assert "conditions" not in unwanted  # no Claimed condition: it was never claimed
    assert echo.paths()["/before/cancels-unwanted"] == 0
