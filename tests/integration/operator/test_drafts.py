"""Draft runs on Workflows that are not deployed: a runtime just for them, then nothing again.

The API's ``POST /workflows/{id}/execute`` creates a Pending WorkflowRun carrying ``spec.definition``
(the editor's draft) for a Workflow whose ``spec.deployed`` is false. The operator (with the real
runtime as its runtime command, not the stand-in) starts a runtime for it, the runtime executes the
draft's definition, and once no run is left the runtime's objects are deleted: the Workflow is back to
owning nothing. A run of an invalid undeployed Workflow without a definition fails with the reason.
"""

from __future__ import annotations

import sys
from typing import Any

from tests.integration.operator.conftest import Kube, Operator, condition, status, workflow_manifest
from tests.support import wait_for

JSON = dict[str, Any]
SELECTOR = "tideflow.io/workflow=editing"
REAL_RUNTIME = f'["{sys.executable}", "-m", "tideflow.runtime"]'
DRAFT = {
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "shape", "type": "transform", "config": {"set": {"from": "the draft"}}},
    ],
    "connections": [{"id": "start-shape", "source": "start", "target": "shape"}],
}


def ended(kube: Kube, name: str) -> JSON | None:
    run = kube.run(name)
    return run if (run.get("status") or {}).get("phase") in ("Completed", "Failed", "Cancelled") else None


def nothing_left(kube: Kube) -> JSON | None:
    workflow = kube.workflow("editing")
    gone = (
        all(kube.child(kind, "editing") is None for kind in ("ConfigMap", "Deployment", "Service"))
        and not kube.pods(SELECTOR)
        and condition(workflow, "Deployed").get("reason") == "NotDeployed"
    )
    return workflow if gone else None


def test_a_draft_run_on_an_undeployed_workflow_runs_and_the_runtime_goes_back_to_zero(
    operator: Operator, kube: Kube
) -> None:
    operator.restart(TIDEFLOW_RUNTIME_COMMAND=REAL_RUNTIME)
    kube.create_workflow(workflow_manifest("editing", deployed=False))
    quiet = wait_for(
        lambda: (
            condition(kube.workflow("editing"), "Deployed").get("reason") == "NotDeployed"
            and kube.workflow("editing")
        ),
        what="the undeployed Workflow to be observed",
    )
    assert status(quiet)["deploymentStatus"] == "NotDeployed"
    assert kube.child("Deployment", "editing") is None

    kube.create_run("editing", "editing-draft", definition=DRAFT)

    def draft_runtime() -> JSON | None:
        workflow = kube.workflow("editing")
        deployment = kube.child("Deployment", "editing")
        up = condition(workflow, "Deployed").get("reason") == "DraftRun" and deployment is not None
        return workflow if up and deployment and deployment["spec"]["replicas"] == 1 else None

    during = wait_for(draft_runtime, timeout=30, what="a draft runtime for the run")
    assert status(during)["deploymentStatus"] == "NotDeployed"  # the Workflow itself is still not deployed
    assert condition(during, "Deployed")["status"] == "False"
    assert "editing-draft" in condition(during, "Deployed")["message"]
    assert not status(during).get("endpoint")

    run = wait_for(lambda: ended(kube, "editing-draft"), timeout=60, what="the draft run to end")
    assert run["status"]["phase"] == "Completed", run["status"]
    assert run["status"]["output"] == {
        "shape": {"from": "the draft"}
    }  # the draft's graph, not the stored one
    assert run["status"]["claimedBy"].startswith("editing-")

    after = wait_for(lambda: nothing_left(kube), timeout=60, what="the draft runtime to be removed")
    assert status(after)["deploymentStatus"] == "NotDeployed"
    messages = sorted(e["message"] for e in kube.events("editing") if e["reason"] == "DraftRuntime")
    assert messages == [
        "Removed the draft runtime: no run is left for it.",
        "Started a draft runtime for run(s) editing-draft.",
    ]


def test_a_run_of_an_invalid_undeployed_workflow_fails_with_the_reason(
    operator: Operator, kube: Kube
) -> None:
    manifest = workflow_manifest("broken", deployed=False)
    manifest["spec"]["connections"][0]["target"] = "no-such-node"
    kube.create_workflow(manifest)
    kube.create_run("broken", "broken-run")
    run = wait_for(lambda: ended(kube, "broken-run"), timeout=30, what="the run to be failed")
    assert run["status"]["phase"] == "Failed"
    assert "the Workflow is invalid" in run["status"]["error"]
    assert "spec.connections[0].target" in run["status"]["error"]
    assert kube.child("Deployment", "broken") is None

    def failed_events() -> list[str]:
        return [e["message"] for e in kube.events("broken") if e["reason"] == "RunFailed"]

    failed = wait_for(failed_events, timeout=10, what="the RunFailed Event")  # posted after the status
    assert len(failed) == 1
    assert "broken-run" in failed[0]
