"""Runs of Workflows without a runtime of their own: draft runtimes and runs failed with the reason.

:func:`~tideflow.operator.drafts.draft_demand` sorts the runs; :func:`~tideflow.operator.planning.plan`
turns the demand into the children, the status and the Events of an undeployed Workflow, chained over
reconciles the way the reconciler does (a plan's status and children are what the next one finds).
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from tideflow.operator.drafts import REASON_DRAFT_RUN, draft_demand
from tideflow.operator.planning import Observed, Plan, plan, status_patch
from tideflow.operator.settings import OperatorSettings

from . import stored_workflow

JSON = dict[str, Any]
SETTINGS = OperatorSettings()
T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
DRAFT = {
    "nodes": [
        {"id": "go", "type": "manual_trigger"},
        {"id": "say", "type": "log", "config": {"message": "x"}},
    ],
    "connections": [{"id": "go-say", "source": "go", "target": "say"}],
}


def run(name: str, phase: str | None = None, *, definition: JSON | None = None, rv: str = "7") -> JSON:
    body: JSON = {
        "metadata": {"name": name, "namespace": "acme", "resourceVersion": rv},
        "spec": {"workflowRef": {"name": "lifecycle-always-on"}, "triggerType": "manual"},
    }
    if definition is not None:
        body["spec"]["definition"] = definition
    if phase is not None:
        body["status"] = {"phase": phase}
    return body


def runs_observed(*runs: JSON, children: Plan | None = None, ready: int = 0) -> Observed:
    found: dict[str, JSON | None] = {"ConfigMap": None, "Deployment": None, "Service": None}
    if children is not None:
        for child in children.children:
            copied = copy.deepcopy(child)
            copied["metadata"]["resourceVersion"] = "2001"
            found[child["kind"]] = copied
        deployment = found["Deployment"]
        assert deployment is not None
        deployment["status"] = {
            "observedGeneration": 1,
            "replicas": ready,
            "readyReplicas": ready,
            "updatedReplicas": ready,
        }
    pending = sum(1 for r in runs if (r.get("status") or {}).get("phase", "Pending") == "Pending")
    return Observed(
        config_map=found["ConfigMap"],
        deployment=found["Deployment"],
        service=found["Service"],
        pending_runs=pending,
        running_runs=len(runs) - pending,
        active_runs=list(runs),
    )


def undeployed(*, broken: bool = False) -> JSON:
    workflow = stored_workflow()
    workflow["spec"]["deployed"] = False
    if broken:
        workflow["spec"]["connections"][0]["target"] = "no-such-node"
    return workflow


def settle(workflow: JSON, result: Plan) -> JSON:
    updated = copy.deepcopy(workflow)
    old = updated.get("status") or {}
    merged = {**old, **status_patch(old, result.status)}
    updated["status"] = {key: value for key, value in merged.items() if value is not None}
    return updated


def condition(status: JSON, type_: str) -> JSON | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


# --- draft_demand ------------------------------------------------------------------------------------


def test_every_active_run_of_a_valid_undeployed_workflow_is_demand() -> None:
    demand = draft_demand(
        [run("b", "Running"), run("a"), run("c", "Pending", definition=DRAFT)],
        parsed=True,
        valid=True,
        serves_runs=False,
        problem="",
    )
    assert (demand.pending, demand.running, demand.runs, demand.fail) == (2, 1, ["a", "b", "c"], [])
    assert demand.wanted


def test_an_invalid_workflow_runs_drafts_and_fails_pending_runs_without_a_definition() -> None:
    demand = draft_demand(
        [run("plain", rv="41"), run("draft", definition=DRAFT), run("held", "Running")],
        parsed=True,
        valid=False,
        serves_runs=False,
        problem="spec.connections[0].target: no node no-such-node",
    )
    assert demand.runs == ["draft"]
    assert [(f.name, f.resource_version) for f in demand.fail] == [("plain", "41")]  # Running is held
    assert demand.fail[0].error == (
        "No runtime can execute this run: the Workflow is invalid: "
        "spec.connections[0].target: no node no-such-node"
    )


def test_a_spec_that_cannot_be_read_fails_every_pending_run() -> None:
    demand = draft_demand(
        [run("plain"), run("draft", definition=DRAFT)],
        parsed=False,
        valid=False,
        serves_runs=False,
        problem="spec.nodes[0].id: bad",
    )
    assert not demand.wanted
    assert [f.name for f in demand.fail] == ["draft", "plain"]


def test_nothing_applies_to_a_workflow_whose_own_runtime_serves_its_runs() -> None:
    demand = draft_demand([run("a")], parsed=True, valid=False, serves_runs=True, problem="x")
    assert not demand.wanted
    assert demand.fail == []


# --- plan -------------------------------------------------------------------------------------------


def test_a_draft_run_starts_a_runtime_for_an_undeployed_workflow_and_it_goes_when_done() -> None:
    workflow = undeployed()
    quiet = plan(workflow, Observed(), T0, SETTINGS)
    workflow = settle(workflow, quiet)
    assert quiet.children == []
    assert not quiet.remove_children

    # A draft run arrives: the three objects, one replica; the Workflow says it is not deployed.
    draft = run("wf-draft", definition=DRAFT)
    started = plan(workflow, runs_observed(draft), T0 + MINUTE, SETTINGS)
    assert [c["kind"] for c in started.children] == ["ConfigMap", "Service", "Deployment"]
    assert started.children[2]["spec"]["replicas"] == 1
    status = started.status
    assert status["deploymentStatus"] == "NotDeployed"
    assert status["endpoint"] is None  # the API must not send triggers to a draft runtime
    deployed = condition(status, "Deployed")
    assert deployed is not None
    assert (deployed["status"], deployed["reason"]) == ("False", REASON_DRAFT_RUN)
    assert "wf-draft" in deployed["message"]
    assert condition(status, "Running") is None
    ready = condition(status, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "NotDeployed")
    assert [(e.reason, e.message) for e in started.events] == [
        ("DraftRuntime", "Started a draft runtime for run(s) wf-draft.")
    ]
    workflow = settle(workflow, started)

    # Running on the draft runtime: nothing more to write, no more Events.
    claimed = run("wf-draft", "Running", definition=DRAFT)
    steady = plan(workflow, runs_observed(claimed, children=started, ready=1), T0 + 2 * MINUTE, SETTINGS)
    assert steady.children[2]["spec"]["replicas"] == 1
    assert steady.events == []
    workflow = settle(workflow, steady)
    assert "1/1 replica(s) ready" in condition(workflow["status"], "Ready")["message"]  # type: ignore[index]

    # Done: the objects go, the Workflow is plainly not deployed again.
    done = plan(workflow, runs_observed(children=started, ready=1), T0 + 3 * MINUTE, SETTINGS)
    assert done.children == []
    assert done.remove_children
    deployed = condition(done.status, "Deployed")
    assert deployed is not None
    assert deployed["reason"] == "NotDeployed"
    assert [(e.reason, e.message) for e in done.events] == [
        ("DraftRuntime", "Removed the draft runtime: no run is left for it.")
    ]
    workflow = settle(workflow, done)
    gone = plan(workflow, Observed(), T0 + 4 * MINUTE, SETTINGS)  # the objects are deleted now
    assert status_patch(workflow["status"], gone.status) == {"replicas": 0, "readyReplicas": 0}
    assert gone.events == []
    assert not gone.remove_children
    workflow = settle(workflow, gone)
    assert status_patch(workflow["status"], plan(workflow, Observed(), T0, SETTINGS).status) == {}


def test_a_run_of_an_invalid_undeployed_workflow_fails_with_the_validation_message() -> None:
    result = plan(undeployed(broken=True), runs_observed(run("wf-plain")), T0, SETTINGS)
    assert result.children == []
    assert [f.name for f in result.fail_runs] == ["wf-plain"]
    assert "spec.connections[0].target" in result.fail_runs[0].error
    assert [e.reason for e in result.events if e.type == "Warning"] == ["Invalid", "RunFailed"]


def test_a_draft_of_an_invalid_undeployed_workflow_still_gets_a_runtime() -> None:
    """The stored spec is broken, the editor's draft is not: the runtime executes runs with definitions."""
    result = plan(
        undeployed(broken=True),
        runs_observed(run("wf-draft", definition=DRAFT), run("wf-plain")),
        T0,
        SETTINGS,
    )
    assert [c["kind"] for c in result.children] == ["ConfigMap", "Service", "Deployment"]
    assert [f.name for f in result.fail_runs] == ["wf-plain"]


def test_runs_of_a_deployed_workflow_are_left_to_its_runtime() -> None:
    workflow = stored_workflow()
    result = plan(workflow, runs_observed(run("wf-a"), run("wf-b", definition=DRAFT)), T0, SETTINGS)
    assert result.fail_runs == []
    assert condition(result.status, "Deployed")["reason"] == "Deployed"  # type: ignore[index]


def test_a_deployed_invalid_workflow_fails_runs_only_while_it_has_no_runtime() -> None:
    broken = stored_workflow()
    broken["spec"]["connections"][0]["target"] = "no-such-node"
    never_made = plan(broken, runs_observed(run("wf-a")), T0, SETTINGS)
    assert [f.name for f in never_made.fail_runs] == ["wf-a"]
    assert never_made.children == []  # still never deployed while invalid

    healthy = stored_workflow()
    made = plan(healthy, Observed(), T0, SETTINGS)
    keeps_last = plan(broken, runs_observed(run("wf-a"), children=made, ready=1), T0, SETTINGS)
    assert keeps_last.fail_runs == []  # the runtime with the last valid definition runs it


def test_deploying_during_a_draft_run_keeps_the_runtime_and_says_so() -> None:
    workflow = undeployed()
    draft = run("wf-draft", "Running", definition=DRAFT)
    started = plan(workflow, runs_observed(draft), T0, SETTINGS)
    workflow = settle(workflow, started)
    workflow["spec"]["deployed"] = True
    deployed = plan(workflow, runs_observed(draft, children=started, ready=1), T0 + MINUTE, SETTINGS)
    assert not deployed.remove_children
    assert [c["kind"] for c in deployed.children] == ["ConfigMap", "Service", "Deployment"]
    assert condition(deployed.status, "Deployed")["reason"] == "Deployed"  # type: ignore[index]
    assert ("DraftRuntime", "The Workflow's own runtime takes over from the draft one.") in [
        (e.reason, e.message) for e in deployed.events
    ]


def test_an_undeployed_workflow_whose_name_is_taken_gets_no_draft_runtime() -> None:
    owned = plan(stored_workflow(), Observed(), T0, SETTINGS)
    stranger = copy.deepcopy(owned.children[2])
    stranger["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "Thing", "name": "x", "uid": "someone-else", "controller": True}
    ]
    observed = Observed(deployment=stranger, pending_runs=1, active_runs=[run("wf-a")])
    result = plan(undeployed(), observed, T0, SETTINGS)
    assert result.children == []
    assert not result.remove_children
