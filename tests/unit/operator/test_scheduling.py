"""The schedule step of a reconcile: runs created once per fire time, checkpoint, policies, waking."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.unit.operator import stored_workflow
from tideflow.core.models import WorkflowSpec
from tideflow.operator.planning import Observed, plan
from tideflow.operator.scheduling import plan_schedule
from tideflow.operator.settings import OperatorSettings

SETTINGS = OperatorSettings(schedule_wake_lead_seconds=30)
T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def every_minute(**overrides: Any) -> dict[str, Any]:
    workflow = stored_workflow("lifecycle-on-demand.yaml")
    workflow["spec"]["state"] = "Active"
    workflow["spec"]["deployed"] = True
    workflow["spec"]["schedule"] = {"type": "interval", "value": "1 minute", "timezone": "UTC", **overrides}
    return workflow


def schedule_plan(
    workflow: dict[str, Any],
    now: dt.datetime,
    runs: list[dict[str, Any]] | None = None,
    since: dt.datetime | None = T0,
) -> Any:
    spec = WorkflowSpec.model_validate(workflow["spec"])
    return plan_schedule(workflow, spec, True, runs or [], now, since)


def run(name: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"phase": phase}}


def test_a_due_fire_time_creates_one_deterministically_named_run() -> None:
    workflow = every_minute()
    result = schedule_plan(workflow, T0 + MINUTE + dt.timedelta(seconds=2))
    assert [r["metadata"]["name"] for r in result.create] == ["lifecycle-on-demand-s-20260105120100"]
    created = result.create[0]
    assert created["spec"] == {
        "workflowRef": {"name": "lifecycle-on-demand"},
        "triggerType": "schedule",
        "scheduledTime": "2026-01-05T12:01:00Z",
        "inputs": {"scheduledTime": "2026-01-05T12:01:00Z"},
    }
    assert created["metadata"]["labels"]["tideflow.io/workflow"] == "lifecycle-on-demand"
    assert created["metadata"]["ownerReferences"][0]["uid"] == workflow["metadata"]["uid"]
    assert result.status["lastRunAt"] == "2026-01-05T12:01:00Z"
    assert result.status["nextRunAt"] == "2026-01-05T12:02:00Z"
    # A second operator deciding at the same time computes the same name: the API server's 409 does the rest.
    again = schedule_plan(workflow, T0 + MINUTE + dt.timedelta(seconds=3))
    assert [r["metadata"]["name"] for r in again.create] == [r["metadata"]["name"] for r in result.create]


def test_the_checkpoint_moves_only_when_a_fire_time_was_handled() -> None:
    workflow = every_minute()
    quiet = schedule_plan(workflow, T0 + dt.timedelta(seconds=20))
    assert quiet.create == []
    assert quiet.status["scheduleCheckpoint"] is None  # nothing decided yet: nothing to write
    fired = schedule_plan(workflow, T0 + MINUTE + dt.timedelta(seconds=1))
    workflow["status"] = {**fired.status}
    assert workflow["status"]["scheduleCheckpoint"] == "2026-01-05T12:01:01Z"
    later = schedule_plan(workflow, T0 + MINUTE + dt.timedelta(seconds=30))
    assert later.create == []
    assert later.status["scheduleCheckpoint"] == "2026-01-05T12:01:01Z"


def test_forbid_skips_while_a_run_is_active_and_replace_cancels_it() -> None:
    busy = [run("earlier", "Running")]
    forbid = schedule_plan(every_minute(concurrencyPolicy="Forbid"), T0 + MINUTE, busy)
    assert forbid.create == []
    assert [s.reason for s in forbid.skipped] == ["ConcurrencyForbid"]
    assert forbid.status["scheduleCheckpoint"] is not None  # the skip is recorded, never re-decided
    replace = schedule_plan(every_minute(concurrencyPolicy="Replace"), T0 + MINUTE, busy)
    assert len(replace.create) == 1
    assert replace.cancel == ["earlier"]
    allow = schedule_plan(every_minute(concurrencyPolicy="Allow"), T0 + MINUTE, busy)
    assert (len(allow.create), allow.cancel) == (1, [])


def test_a_paused_or_undeployed_workflow_does_not_fire() -> None:
    paused = every_minute()
    paused["spec"]["state"] = "Paused"
    result = schedule_plan(paused, T0 + 5 * MINUTE)
    assert (result.active, result.reason, result.create) == (False, "NotActive", [])
    undeployed = every_minute()
    undeployed["spec"]["deployed"] = False
    assert schedule_plan(undeployed, T0 + 5 * MINUTE).reason == "NotDeployed"


def test_catchup_after_an_outage_follows_the_policy() -> None:
    # Fire times 12:05 .. 12:30 were missed; at 12:32 the newest is two minutes late (over the grace).
    for policy, expected in (("none", 0), ("latest", 1), ("all", 6)):
        workflow = every_minute(
            value="5 minutes", catchup={"policy": policy, "maxRuns": 10, "windowSeconds": 3600}
        )
        workflow["status"] = {"scheduleCheckpoint": "2026-01-05T12:00:00Z"}
        result = schedule_plan(workflow, T0 + 32 * MINUTE)
        assert len(result.create) == expected, policy
        assert result.skipped_count == 6 - expected, policy


def test_a_scaled_to_zero_on_demand_workflow_is_woken_ahead_of_its_fire_time() -> None:
    workflow = every_minute()
    workflow["status"] = {"conditions": []}
    far = plan(workflow, Observed(), T0 + dt.timedelta(seconds=5), SETTINGS)
    assert far.status["stoppedReason"] == "NoDemand"
    near = plan(workflow, Observed(), T0 + dt.timedelta(seconds=40), SETTINGS)  # fire at 12:01, lead 30 s
    assert near.status["stoppedReason"] is None
    assert near.requeue_at is not None
    assert near.requeue_at <= T0 + MINUTE


def test_the_scheduled_condition_says_why_a_schedule_is_inactive() -> None:
    manual = stored_workflow("lifecycle-always-on.yaml")
    result = plan(manual, Observed(), T0, SETTINGS)
    scheduled = next(c for c in result.status["conditions"] if c["type"] == "Scheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Manual")
    active = plan(every_minute(), Observed(), T0, SETTINGS)
    scheduled = next(c for c in active.status["conditions"] if c["type"] == "Scheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("True", "Active")
    assert "Next run at 2026-01-05T12:01:00Z" in scheduled["message"]
