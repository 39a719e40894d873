"""Unit tests of one reconcile decided as data (:mod:`tideflow.operator.planning`).

Each test hands :func:`plan` a Workflow as the API server stores it, the children "found in the
cluster" and ``now``, and checks what a user sees: the conditions (Kubernetes convention: one per type,
``lastTransitionTime`` moves only when ``status`` does), ``status.errors`` with field paths, the
deployment status, the Events, and which children are written, removed or left alone. Reconciles are
chained by feeding one plan's status and children into the next, as the reconciler does, which is how
idempotency (a repeat plan writes nothing) is checked.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from tideflow.core.models import MAX_STATUS_ISSUES, WorkflowSpec
from tideflow.core.validation import validate_workflow
from tideflow.operator import builders, lifecycle
from tideflow.operator.planning import Observed, Plan, plan, set_condition, status_patch
from tideflow.operator.settings import OperatorSettings

from . import UID, stored_workflow

JSON = dict[str, Any]
SETTINGS = OperatorSettings()
T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)  # a Monday
T0_TEXT = "2026-01-05T12:00:00Z"
MINUTE = dt.timedelta(minutes=1)
CONDITION_TYPES = ["Valid", "Deployed", "Running", "Ready", "Scheduled"]


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions(status: JSON) -> dict[str, JSON]:
    listed: list[JSON] = status["conditions"]
    by_type = {c["type"]: c for c in listed}
    assert len(by_type) == len(listed), f"duplicate condition types: {listed}"
    return by_type


def cond(status: JSON, type_: str) -> JSON:
    return conditions(status)[type_]


def summary(status: JSON) -> dict[str, tuple[str, str]]:
    return {type_: (c["status"], c["reason"]) for type_, c in conditions(status).items()}


def found(result: Plan, **deployment_status: int) -> Observed:
    """The children of ``result`` as the next reconcile finds them (the Deployment with ``status``)."""
    by_kind = {child["kind"]: copy.deepcopy(child) for child in result.children}
    assert set(by_kind) == {"ConfigMap", "Deployment", "Service"}, result.children
    for child in by_kind.values():
        child["metadata"]["resourceVersion"] = "2001"
        child["metadata"]["uid"] = f"uid-{child['kind'].lower()}"
    if deployment_status:
        by_kind["Deployment"]["status"] = {"observedGeneration": 1, **deployment_status}
    return Observed(
        config_map=by_kind["ConfigMap"], deployment=by_kind["Deployment"], service=by_kind["Service"]
    )


def ready(result: Plan, replicas: int) -> Observed:
    return found(result, replicas=replicas, readyReplicas=replicas, updatedReplicas=replicas)


def settle(workflow: JSON, result: Plan) -> JSON:
    """The Workflow after the reconciler wrote ``result``'s status."""
    updated = copy.deepcopy(workflow)
    old = updated.get("status") or {}
    merged = {**old, **status_patch(old, result.status)}
    updated["status"] = {key: value for key, value in merged.items() if value is not None}
    return updated


def with_spec(workflow: JSON, generation: int | None = None, **changes: Any) -> JSON:
    """``workflow`` after a user's update: spec fields changed and, as the API server does, generation+1."""
    updated = copy.deepcopy(workflow)
    updated["spec"].update(changes)
    updated["metadata"]["generation"] = generation or workflow["metadata"]["generation"] + 1
    return updated


def foreign(child: JSON, owner_uid: str | None = "someone-else") -> JSON:
    stranger = copy.deepcopy(child)
    stranger["metadata"].pop("ownerReferences")
    if owner_uid is not None:
        stranger["metadata"]["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "Thing", "name": "x", "uid": owner_uid, "controller": True}
        ]
    return stranger


def missing_target(workflow: JSON) -> JSON:
    broken = copy.deepcopy(workflow)
    broken["spec"]["connections"][0]["target"] = "no-such-node"
    return broken


def deployed_and_ready(example: str = "lifecycle-always-on.yaml") -> tuple[JSON, Plan, Observed]:
    """A workflow whose runtime was created at T0 and is ready at T0 + 1 minute, settled."""
    workflow = stored_workflow(example)
    first = plan(workflow, Observed(), T0, SETTINGS)
    workflow = settle(workflow, first)
    replicas = first.children[2]["spec"]["replicas"]
    second = plan(workflow, ready(first, replicas), T0 + MINUTE, SETTINGS)
    return settle(workflow, second), second, ready(second, replicas)


# --- first visit ----------------------------------------------------------------------------------------


def test_the_first_visit_sets_every_condition_at_now_with_the_generation() -> None:
    workflow = stored_workflow(generation=3)
    status = plan(workflow, Observed(), T0, SETTINGS).status
    assert [c["type"] for c in status["conditions"]] == CONDITION_TYPES
    assert summary(status) == {
        "Valid": ("True", "Valid"),
        "Deployed": ("True", "Deployed"),
        "Running": ("True", lifecycle.ALWAYS_ON),
        "Ready": ("False", "Starting"),
        "Scheduled": ("False", "Manual"),
    }
    for c in status["conditions"]:
        assert c["lastTransitionTime"] == T0_TEXT, c
        assert c["observedGeneration"] == 3, c
        assert c["message"], c
    assert status["observedGeneration"] == 3
    assert status["deploymentStatus"] == "Starting"
    assert (status["replicas"], status["readyReplicas"]) == (0, 0)
    assert status["selector"] == builders.selector_string("lifecycle-always-on")
    assert status["endpoint"] == builders.endpoint("lifecycle-always-on", "acme", SETTINGS)
    assert status["errors"] is None
    assert status["stoppedReason"] is None


def test_the_first_visit_plans_the_three_owned_children_with_the_decided_replicas() -> None:
    workflow = stored_workflow()  # always-on, spec.replicas 2
    result = plan(workflow, Observed(), T0, SETTINGS)
    assert sorted(child["kind"] for child in result.children) == ["ConfigMap", "Deployment", "Service"]
    assert not result.remove_children
    assert result.conflicts == []
    deployment = next(child for child in result.children if child["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    for child in result.children:
        assert [ref["uid"] for ref in child["metadata"]["ownerReferences"]] == [UID]


def test_the_first_visit_tells_the_story_in_events() -> None:
    events = plan(stored_workflow(), Observed(), T0, SETTINGS).events
    assert [(e.type, e.reason) for e in events] == [("Normal", "Started"), ("Normal", "Starting")]


# --- idempotency ----------------------------------------------------------------------------------------


def test_a_repeat_plan_changes_nothing_and_emits_nothing() -> None:
    workflow = stored_workflow()
    first = plan(workflow, Observed(), T0, SETTINGS)
    workflow = settle(workflow, first)
    repeat = plan(workflow, found(first), T0 + 10 * MINUTE, SETTINGS)
    assert repeat.status == first.status
    assert status_patch(workflow["status"], repeat.status) == {}
    assert repeat.events == []
    assert repeat.children == first.children
    assert not repeat.remove_children


@pytest.mark.parametrize(
    "example",
    [
        "lifecycle-always-on.yaml",
        "lifecycle-idle-shutdown.yaml",
        "lifecycle-scheduled-window.yaml",
        "daily-etl.yaml",
        "manual-webhook.yaml",
    ],
)
def test_a_settled_workflow_needs_no_status_patch(example: str) -> None:
    workflow, last, children = deployed_and_ready(example)
    again = plan(workflow, children, T0 + 2 * MINUTE, SETTINGS)
    assert status_patch(workflow["status"], again.status) == {}
    assert again.events == []
    assert again.children == last.children


def test_status_fields_the_planner_does_not_own_are_never_patched() -> None:
    workflow, _, children = deployed_and_ready()
    # lastActivityAt is the runtime's, webhookPath the API's; nextRunAt and lastRunAt are the planner's.
    others = {
        "lastActivityAt": "2026-01-05T11:00:00Z",
        "webhookPath": "/hooks/acme/orders",
    }
    workflow["status"].update(others)
    patch = status_patch(workflow["status"], plan(workflow, children, T0 + 2 * MINUTE, SETTINGS).status)
    assert patch == {}


# --- transitions and lastTransitionTime -----------------------------------------------------------------


def test_becoming_ready_moves_only_the_ready_transition_time() -> None:
    workflow = stored_workflow()
    first = plan(workflow, Observed(), T0, SETTINGS)
    workflow = settle(workflow, first)
    later = T0 + 3 * MINUTE
    second = plan(workflow, ready(first, 2), later, SETTINGS)
    assert summary(second.status)["Ready"] == ("True", "RuntimeReady")
    assert second.status["deploymentStatus"] == "Running"
    assert (second.status["replicas"], second.status["readyReplicas"]) == (2, 2)
    times = {type_: c["lastTransitionTime"] for type_, c in conditions(second.status).items()}
    assert times == {
        "Valid": T0_TEXT,
        "Deployed": T0_TEXT,
        "Running": T0_TEXT,
        "Ready": stamp(later),
        "Scheduled": T0_TEXT,
    }
    assert [(e.type, e.reason) for e in second.events] == [("Normal", "Running")]
    assert set(status_patch(workflow["status"], second.status)) == {
        "conditions",
        "deploymentStatus",
        "replicas",
        "readyReplicas",
    }


def test_a_reason_change_without_a_status_change_keeps_the_transition_time() -> None:
    workflow = stored_workflow("lifecycle-idle-shutdown.yaml")
    first = plan(workflow, Observed(), T0, SETTINGS)
    assert summary(first.status)["Running"] == ("True", lifecycle.ACTIVE)
    workflow = settle(workflow, first)
    busy = found(first)
    busy = Observed(busy.config_map, busy.deployment, busy.service, running_runs=1)
    second = plan(workflow, busy, T0 + 5 * MINUTE, SETTINGS)
    running = cond(second.status, "Running")
    assert (running["status"], running["reason"]) == ("True", lifecycle.RUN_IN_PROGRESS)
    assert running["message"] != cond(first.status, "Running")["message"]
    assert running["lastTransitionTime"] == T0_TEXT


def test_a_new_generation_updates_observed_generation_but_not_transition_times() -> None:
    workflow, _, children = deployed_and_ready()
    renamed = with_spec(workflow, description="Receives order webhooks, now documented better.")
    result = plan(renamed, children, T0 + 5 * MINUTE, SETTINGS)
    assert result.status["observedGeneration"] == 2
    for c in result.status["conditions"]:
        assert c["observedGeneration"] == 2
        assert c["lastTransitionTime"] == cond(workflow["status"], c["type"])["lastTransitionTime"]


def test_an_explicit_stop_and_start() -> None:
    workflow, _, children = deployed_and_ready()
    stop_at = T0 + 10 * MINUTE
    stopped = with_spec(workflow, replicas=0)
    result = plan(stopped, children, stop_at, SETTINGS)
    assert summary(result.status)["Running"] == ("False", lifecycle.STOPPED_BY_USER)
    assert cond(result.status, "Running")["lastTransitionTime"] == stamp(stop_at)
    assert summary(result.status)["Ready"] == ("False", "Stopped")
    assert result.status["deploymentStatus"] == "Stopped"
    assert result.status["stoppedReason"] == lifecycle.STOPPED_BY_USER
    assert next(c for c in result.children if c["kind"] == "Deployment")["spec"]["replicas"] == 0
    assert ("Normal", "Stopped") in [(e.type, e.reason) for e in result.events]
    stopped = settle(stopped, result)
    assert stopped["status"]["stoppedReason"] == lifecycle.STOPPED_BY_USER

    start_at = T0 + 20 * MINUTE
    started = with_spec(stopped, replicas=2)
    restart = plan(started, found(result), start_at, SETTINGS)
    assert summary(restart.status)["Running"] == ("True", lifecycle.ALWAYS_ON)
    assert cond(restart.status, "Running")["lastTransitionTime"] == stamp(start_at)
    assert restart.status["deploymentStatus"] == "Starting"
    patch = status_patch(stopped["status"], restart.status)
    assert patch["stoppedReason"] is None  # removed by the merge patch
    assert ("Normal", "Started") in [(e.type, e.reason) for e in restart.events]


# --- readiness ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ready_replicas", "updated_replicas", "expected"),
    [
        (0, 0, "Starting"),
        (1, 1, "Starting"),
        (2, 1, "Starting"),  # an old pod is still ready, a new one is not
        (1, 2, "Starting"),
        (2, 2, "Running"),
        (3, 3, "Running"),  # surplus while scaling down
    ],
)
def test_running_only_when_ready_and_updated_replicas_reach_the_wanted_count(
    ready_replicas: int, updated_replicas: int, expected: str
) -> None:
    workflow = stored_workflow()  # wants 2
    first = plan(workflow, Observed(), T0, SETTINGS)
    observed = found(
        first,
        replicas=max(ready_replicas, updated_replicas, 2),
        readyReplicas=ready_replicas,
        updatedReplicas=updated_replicas,
    )
    status = plan(settle(workflow, first), observed, T0 + MINUTE, SETTINGS).status
    assert status["deploymentStatus"] == expected
    assert cond(status, "Ready")["status"] == ("True" if expected == "Running" else "False")
    assert status["readyReplicas"] == ready_replicas


def test_a_stopped_runtime_is_never_ready() -> None:
    workflow, _, children = deployed_and_ready()
    status = plan(with_spec(workflow, replicas=0), children, T0 + 5 * MINUTE, SETTINGS).status
    assert status["deploymentStatus"] == "Stopped"
    assert cond(status, "Ready")["status"] == "False"


# --- lifecycle in the status: stoppedReason and nextTransitionAt ----------------------------------------


def test_idle_shutdown_publishes_when_it_will_stop_and_then_stops() -> None:
    workflow = stored_workflow("lifecycle-idle-shutdown.yaml")  # 15 minutes
    first = plan(workflow, Observed(), T0, SETTINGS)
    assert first.status["nextTransitionAt"] == stamp(T0 + 15 * MINUTE)
    assert first.status["stoppedReason"] is None
    workflow = settle(workflow, first)
    idle = plan(workflow, ready(first, 1), T0 + 15 * MINUTE, SETTINGS)
    assert summary(idle.status)["Running"] == ("False", lifecycle.IDLE_TIMEOUT)
    assert idle.status["stoppedReason"] == lifecycle.IDLE_TIMEOUT
    assert idle.status["deploymentStatus"] == "Stopped"
    assert next(c for c in idle.children if c["kind"] == "Deployment")["spec"]["replicas"] == 0
    assert status_patch(workflow["status"], idle.status)["nextTransitionAt"] is None


def test_idle_shutdown_stays_stopped_after_the_idle_timeout_until_demand() -> None:
    workflow = stored_workflow("lifecycle-idle-shutdown.yaml")  # 15 minutes
    first = plan(workflow, Observed(), T0, SETTINGS)
    workflow = settle(workflow, first)
    idle = plan(workflow, ready(first, 1), T0 + 15 * MINUTE, SETTINGS)
    workflow = settle(workflow, idle)
    stopped = found(idle, replicas=0, readyReplicas=0, updatedReplicas=0)
    later = plan(workflow, stopped, T0 + 16 * MINUTE, SETTINGS)
    assert summary(later.status)["Running"] == ("False", lifecycle.IDLE_TIMEOUT), "restarted with no demand"
    assert later.status["stoppedReason"] == lifecycle.IDLE_TIMEOUT
    # A Pending run wakes it.
    waiting = Observed(stopped.config_map, stopped.deployment, stopped.service, pending_runs=1)
    woken = plan(workflow, waiting, T0 + 17 * MINUTE, SETTINGS)
    assert summary(woken.status)["Running"] == ("True", lifecycle.RUN_WAITING)


def test_the_last_activity_in_the_status_keeps_an_on_demand_runtime_up() -> None:
    workflow = stored_workflow("lifecycle-on-demand.yaml")
    first = plan(workflow, Observed(), T0, SETTINGS)
    assert summary(first.status)["Running"] == ("False", lifecycle.NO_DEMAND)
    assert first.status["deploymentStatus"] == "Stopped"
    workflow = settle(workflow, first)
    workflow["status"]["lastActivityAt"] = stamp(T0 + MINUTE)
    active = plan(workflow, found(first), T0 + 2 * MINUTE, SETTINGS)
    assert summary(active.status)["Running"] == ("True", lifecycle.ACTIVE)
    assert active.status["nextTransitionAt"] == stamp(T0 + 6 * MINUTE)
    assert status_patch(workflow["status"], active.status)["stoppedReason"] is None


def test_a_pending_run_starts_an_on_demand_runtime() -> None:
    workflow = stored_workflow("lifecycle-on-demand.yaml")
    first = plan(workflow, Observed(), T0, SETTINGS)
    children = found(first)
    waiting = Observed(children.config_map, children.deployment, children.service, pending_runs=1)
    result = plan(settle(workflow, first), waiting, T0 + MINUTE, SETTINGS)
    assert summary(result.status)["Running"] == ("True", lifecycle.RUN_WAITING)
    assert next(c for c in result.children if c["kind"] == "Deployment")["spec"]["replicas"] == 1
    assert result.status["deploymentStatus"] == "Starting"


def test_a_scheduled_window_publishes_its_next_opening_and_closing() -> None:
    workflow = stored_workflow()
    workflow["spec"]["lifecycle"] = {
        "type": "scheduled-window",
        "schedule": {"timezone": "UTC", "windows": [{"days": [1], "startTime": "13:00", "endTime": "14:00"}]},
    }
    outside = plan(workflow, Observed(), T0, SETTINGS)  # Monday 12:00
    assert summary(outside.status)["Running"] == ("False", lifecycle.OUTSIDE_WINDOW)
    assert outside.status["stoppedReason"] == lifecycle.OUTSIDE_WINDOW
    assert outside.status["nextTransitionAt"] == "2026-01-05T13:00:00Z"
    workflow = settle(workflow, outside)
    inside = plan(workflow, found(outside), T0 + 60 * MINUTE, SETTINGS)
    assert summary(inside.status)["Running"] == ("True", lifecycle.INSIDE_WINDOW)
    assert inside.status["nextTransitionAt"] == "2026-01-05T14:00:00Z"
    patch = status_patch(workflow["status"], inside.status)
    assert patch["stoppedReason"] is None
    assert patch["nextTransitionAt"] == "2026-01-05T14:00:00Z"


def test_always_on_publishes_no_transition() -> None:
    status = plan(stored_workflow(), Observed(), T0, SETTINGS).status
    assert status["nextTransitionAt"] is None


# --- invalid workflows ----------------------------------------------------------------------------------


def _expected_errors(workflow: JSON) -> list[JSON]:
    result = validate_workflow(WorkflowSpec.model_validate(workflow["spec"]))
    return [issue.to_dict() for issue in result.errors]


def test_an_invalid_new_workflow_is_not_deployed_and_lists_every_error() -> None:
    workflow = missing_target(stored_workflow())
    result = plan(workflow, Observed(), T0, SETTINGS)
    errors = result.status["errors"]
    assert "spec.connections[0].target" in [e["path"] for e in errors]
    assert errors == _expected_errors(workflow)
    assert summary(result.status)["Valid"] == ("False", "Invalid")
    assert f"{len(errors)} error(s)" in cond(result.status, "Valid")["message"]
    assert summary(result.status)["Deployed"] == ("False", "Invalid")
    assert "Running" not in conditions(result.status)
    assert cond(result.status, "Ready")["status"] == "False"
    assert result.status["deploymentStatus"] == "Failed"
    assert result.children == []
    assert not result.remove_children


def test_a_workflow_without_a_trigger_is_invalid() -> None:
    workflow = stored_workflow()
    workflow["spec"]["nodes"] = [n for n in workflow["spec"]["nodes"] if n["id"] != "receive"]
    workflow["spec"]["connections"] = [c for c in workflow["spec"]["connections"] if c["source"] != "receive"]
    workflow["spec"]["nodes"][0]["config"]["message"] = "Order received"
    result = plan(workflow, Observed(), T0, SETTINGS)
    errors = result.status["errors"]
    assert errors == _expected_errors(workflow)
    assert [e["path"] for e in errors] == ["spec.nodes"]
    assert "trigger" in errors[0]["message"]
    assert result.status["deploymentStatus"] == "Failed"
    assert result.children == []


def test_an_invalid_definition_is_announced_once_with_the_field_paths() -> None:
    workflow = missing_target(stored_workflow())
    first = plan(workflow, Observed(), T0, SETTINGS)
    warnings = [e for e in first.events if e.type == "Warning"]
    assert [e.reason for e in warnings] == ["Invalid", "Failed"]
    assert "spec.connections[0].target" in warnings[0].message
    again = plan(settle(workflow, first), Observed(), T0 + MINUTE, SETTINGS)
    assert again.events == []
    assert status_patch(settle(workflow, first)["status"], again.status) == {}


def test_errors_are_bounded_in_the_status() -> None:
    workflow = stored_workflow()
    workflow["spec"]["connections"] = [
        {"id": f"c{i}", "source": "receive", "target": f"missing-{i}"} for i in range(MAX_STATUS_ISSUES + 20)
    ]
    errors = plan(workflow, Observed(), T0, SETTINGS).status["errors"]
    assert len(_expected_errors(workflow)) > MAX_STATUS_ISSUES  # the premise: more errors than fit
    assert len(errors) == MAX_STATUS_ISSUES


def test_a_spec_the_models_refuse_is_invalid_with_bracketed_field_paths() -> None:
    """A stored spec the models reject (e.g. from before a schema change) gets the same path style."""
    workflow = stored_workflow()
    workflow["spec"]["nodes"][1]["timeoutSeconds"] = "soon"
    result = plan(workflow, Observed(), T0, SETTINGS)
    assert summary(result.status)["Valid"] == ("False", "Invalid")
    assert result.status["deploymentStatus"] == "Failed"
    assert result.children == []
    assert [e["path"] for e in result.status["errors"]] == ["spec.nodes[1].timeoutSeconds"]


def _graph_error(workflow: JSON) -> JSON:
    return missing_target(workflow)


def _schema_error(workflow: JSON) -> JSON:
    broken = copy.deepcopy(workflow)
    broken["spec"]["nodes"][1]["timeoutSeconds"] = "soon"
    return broken


@pytest.mark.parametrize("break_it", [_graph_error, _schema_error], ids=["graph-error", "schema-error"])
def test_an_invalid_update_keeps_the_deployed_runtime(break_it: Any) -> None:
    workflow, _, children = deployed_and_ready()
    broken = break_it(with_spec(workflow))
    result = plan(broken, children, T0 + 5 * MINUTE, SETTINGS)
    assert result.children == [], "the runtime's definition must not be rewritten with an invalid one"
    assert not result.remove_children
    assert summary(result.status)["Valid"] == ("False", "Invalid")
    assert summary(result.status)["Deployed"] == ("True", "LastValidDefinition")
    assert result.status["deploymentStatus"] == "Running"
    assert result.status["errors"]
    assert ("Warning", "Invalid") in [(e.type, e.reason) for e in result.events]


def test_a_fixed_definition_is_announced_as_valid_again() -> None:
    workflow = stored_workflow()
    broken = missing_target(workflow)
    first = plan(broken, Observed(), T0, SETTINGS)
    fixed = settle(workflow, first)
    fixed["metadata"]["generation"] = 2
    result = plan(fixed, Observed(), T0 + MINUTE, SETTINGS)
    assert summary(result.status)["Valid"] == ("True", "Valid")
    assert cond(result.status, "Valid")["lastTransitionTime"] == stamp(T0 + MINUTE)
    assert ("Normal", "Valid") in [(e.type, e.reason) for e in result.events]
    assert status_patch(fixed["status"], result.status)["errors"] is None
    assert len(result.children) == 3


# --- deployed: false ------------------------------------------------------------------------------------


def test_not_deployed_without_children_removes_nothing() -> None:
    workflow = stored_workflow()
    workflow["spec"]["deployed"] = False
    result = plan(workflow, Observed(), T0, SETTINGS)
    assert not result.remove_children
    assert result.children == []
    assert summary(result.status) == {
        "Valid": ("True", "Valid"),
        "Deployed": ("False", "NotDeployed"),
        "Ready": ("False", "NotDeployed"),
        "Scheduled": ("False", "Manual"),
    }
    assert result.status["deploymentStatus"] == "NotDeployed"
    assert result.status["endpoint"] is None


def test_undeploying_removes_the_children_and_clears_the_endpoint() -> None:
    workflow, _, children = deployed_and_ready()
    undeployed = with_spec(workflow, deployed=False)
    result = plan(undeployed, children, T0 + 5 * MINUTE, SETTINGS)
    assert result.remove_children
    assert result.children == []
    assert result.status["deploymentStatus"] == "NotDeployed"
    assert "Running" not in conditions(result.status)
    assert cond(result.status, "Deployed")["lastTransitionTime"] == stamp(T0 + 5 * MINUTE)
    patch = status_patch(workflow["status"], result.status)
    assert patch["endpoint"] is None
    assert "Running" not in [c["type"] for c in patch["conditions"]]
    # Once the children are gone, nothing more to remove.
    gone = plan(settle(undeployed, result), Observed(), T0 + 6 * MINUTE, SETTINGS)
    assert not gone.remove_children
    assert gone.events == []


# --- children owned by someone else ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ConfigMap", "Deployment", "Service"])
@pytest.mark.parametrize("owner_uid", ["someone-else", None], ids=["other-owner", "no-owner"])
def test_children_owned_by_another_are_a_conflict_and_left_alone(kind: str, owner_uid: str | None) -> None:
    workflow = stored_workflow()
    mine = found(plan(workflow, Observed(), T0, SETTINGS))
    children = {"ConfigMap": mine.config_map, "Deployment": mine.deployment, "Service": mine.service}
    child = children[kind]
    assert child is not None
    children[kind] = foreign(child, owner_uid)
    observed = Observed(children["ConfigMap"], children["Deployment"], children["Service"])
    result = plan(workflow, observed, T0, SETTINGS)
    assert result.conflicts == [kind]
    assert result.children == []
    assert not result.remove_children
    assert summary(result.status)["Deployed"] == ("False", "NameConflict")
    assert result.status["deploymentStatus"] == "Failed"
    assert ("Warning", "Failed") in [(e.type, e.reason) for e in result.events]
    # Not deploying it does not delete someone else's object either.
    undeployed = with_spec(workflow, deployed=False)
    assert not plan(undeployed, observed, T0, SETTINGS).remove_children


def test_a_child_of_a_recreated_workflow_with_the_same_name_is_not_adopted() -> None:
    old = stored_workflow(uid="uid-of-the-deleted-workflow")
    leftovers = found(plan(old, Observed(), T0, SETTINGS))
    new = stored_workflow(uid="uid-of-the-new-workflow")
    result = plan(new, leftovers, T0, SETTINGS)
    assert sorted(result.conflicts) == ["ConfigMap", "Deployment", "Service"]
    assert result.children == []


# --- set_condition and status_patch ---------------------------------------------------------------------


def test_set_condition_adds_a_condition_at_now() -> None:
    result = set_condition([], "Valid", True, "Valid", "ok", 4, T0)
    assert result == [
        {
            "type": "Valid",
            "status": "True",
            "reason": "Valid",
            "message": "ok",
            "lastTransitionTime": T0_TEXT,
            "observedGeneration": 4,
        }
    ]


def test_set_condition_moves_the_transition_time_only_on_a_status_change() -> None:
    before = set_condition([], "Ready", False, "Starting", "0/1", 1, T0)
    same = set_condition(before, "Ready", False, "Stopped", "stopped", 2, T0 + MINUTE)
    assert same[0]["lastTransitionTime"] == T0_TEXT
    assert (same[0]["reason"], same[0]["message"], same[0]["observedGeneration"]) == ("Stopped", "stopped", 2)
    flipped = set_condition(same, "Ready", True, "RuntimeReady", "1/1", 2, T0 + 2 * MINUTE)
    assert flipped[0]["lastTransitionTime"] == stamp(T0 + 2 * MINUTE)
    assert flipped[0]["status"] == "True"


def test_set_condition_keeps_the_other_conditions_and_does_not_mutate_its_input() -> None:
    start = set_condition([], "Valid", True, "Valid", "ok", 1, T0)
    start = set_condition(start, "Ready", False, "Starting", "0/1", 1, T0)
    snapshot = copy.deepcopy(start)
    updated = set_condition(start, "Ready", True, "RuntimeReady", "1/1", 1, T0 + MINUTE)
    assert start == snapshot
    assert {c["type"]: c["status"] for c in updated} == {"Valid": "True", "Ready": "True"}
    assert len(updated) == 2


def test_status_patch_is_empty_for_equal_statuses() -> None:
    status = {"deploymentStatus": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    assert status_patch(status, copy.deepcopy(status)) == {}


def test_status_patch_sets_changed_fields_and_removes_cleared_ones() -> None:
    old = {"deploymentStatus": "Stopped", "stoppedReason": "IdleTimeout", "replicas": 0, "lastRunAt": "x"}
    new = {"deploymentStatus": "Starting", "stoppedReason": None, "replicas": 0, "nextTransitionAt": None}
    assert status_patch(old, new) == {"deploymentStatus": "Starting", "stoppedReason": None}
