"""Lifecycle policies, end to end, driven by the operator's clock file instead of waiting.

The operator reads 'now' from ``operator.clock`` and re-checks every Workflow every second, so a
test moves the clock and polls for the transition; to check that something did *not* happen it
asks for a reconcile it can observe (``kube.reconciled``). Activity is written to
``status.lastActivityAt`` as the runtime would, and WorkflowRuns' phases through their ``/status``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.integration.operator.conftest import Kube, Operator, condition, is_true, status, workflow_manifest
from tests.support import wait_for
from tideflow.core.clock import format_time, parse_time

JSON = dict[str, Any]
TIMEOUT = 40.0
MINUTE = dt.timedelta(minutes=1)


def at(text: str) -> dt.datetime:
    return parse_time(text)


def running_reason(workflow: JSON | None) -> str | None:
    reason = condition(workflow, "Running").get("reason")
    return str(reason) if reason is not None else None


def wait_running(kube: Kube, name: str, reason: str) -> JSON:
    """Running=True for ``reason``, and the runtime ready."""

    def probe() -> JSON | None:
        workflow = kube.workflow(name)
        up = (
            is_true(workflow, "Running")
            and running_reason(workflow) == reason
            and is_true(workflow, "Ready")
            and status(workflow).get("deploymentStatus") == "Running"
        )
        return workflow if up else None

    return wait_for(probe, timeout=TIMEOUT, what=f"{name} running ({reason})")


def wait_stopped(kube: Kube, name: str, reason: str) -> JSON:
    """Running=False for ``reason``, the Deployment at zero and no runtime pod left."""

    def probe() -> JSON | None:
        workflow = kube.workflow(name)
        current = status(workflow)
        deployment = kube.child("Deployment", name)
        down = (
            condition(workflow, "Running").get("status") == "False"
            and running_reason(workflow) == reason
            and current.get("stoppedReason") == reason
            and current.get("deploymentStatus") == "Stopped"
            and deployment is not None
            and deployment["spec"]["replicas"] == 0
            and not kube.pods(f"tideflow.io/workflow={name}")
        )
        return workflow if down else None

    return wait_for(probe, timeout=TIMEOUT, what=f"{name} stopped ({reason})")


def stopped_events(kube: Kube, name: str, reason: str) -> list[JSON]:
    """The ``Stopped`` Events the Running condition's transitions to ``reason`` recorded."""
    return [
        e for e in kube.events(name) if e["reason"] == "Stopped" and e["message"].startswith(f"{reason}:")
    ]


def next_transition(workflow: JSON) -> str | None:
    value = status(workflow).get("nextTransitionAt")
    return str(value) if value is not None else None


# --- idle-shutdown -------------------------------------------------------------------------------------


def test_idle_shutdown_stops_after_the_timeout_and_stays_stopped(operator: Operator, kube: Kube) -> None:
    start = operator.clock.set(at("2026-06-01T10:00:00Z"))
    kube.create_workflow(
        workflow_manifest("idler", lifecycle={"type": "idle-shutdown", "idleTimeoutMinutes": 15})
    )
    workflow = wait_running(kube, "idler", "Active")
    # No activity yet: the baseline is when the runtime was started.
    assert next_transition(workflow) == format_time(start + 15 * MINUTE)

    # The runtime reports activity; the deadline moves to 15 minutes after it.
    kube.patch_workflow_status("idler", {"lastActivityAt": format_time(start + 5 * MINUTE)})
    wait_for(
        lambda: next_transition(kube.must_workflow("idler")) == format_time(start + 20 * MINUTE),
        timeout=TIMEOUT,
        what="nextTransitionAt to follow lastActivityAt",
    )

    operator.clock.set(start + 19 * MINUTE)
    workflow = kube.reconciled("idler")
    assert running_reason(workflow) == "Active", condition(workflow, "Running")
    assert kube.must_child("Deployment", "idler")["spec"]["replicas"] == 1

    operator.clock.set(start + 20 * MINUTE + dt.timedelta(seconds=1))
    wait_for(
        lambda: stopped_events(kube, "idler", "IdleTimeout"),
        timeout=TIMEOUT,
        what="a Stopped (IdleTimeout) Event",
    )
    # Once stopped for being idle it must stay stopped: nothing ran, nothing is active.
    workflow = kube.reconciled("idler")
    assert status(workflow).get("deploymentStatus") == "Stopped", (
        "the idle-stopped runtime was started again without any activity or run: "
        f"Running={condition(workflow, 'Running')}, events={[e['message'] for e in kube.events('idler')]}"
    )
    stopped = wait_stopped(kube, "idler", "IdleTimeout")
    assert condition(stopped, "Ready")["status"] == "False"
    assert next_transition(stopped) is None
    # One stop, and no start after it.
    assert len(stopped_events(kube, "idler", "IdleTimeout")) == 1
    assert kube.event_reasons("idler")["Started"] == 1


def test_idle_shutdown_never_stops_while_a_run_is_running(operator: Operator, kube: Kube) -> None:
    start = operator.clock.set(at("2026-06-01T10:00:00Z"))
    kube.create_workflow(
        workflow_manifest("worker", lifecycle={"type": "idle-shutdown", "idleTimeoutMinutes": 5})
    )
    wait_running(kube, "worker", "Active")
    kube.create_run("worker", "long-run")
    kube.set_run_phase("long-run", "Running")

    operator.clock.set(start + 60 * MINUTE)  # far past the idle timeout
    workflow = wait_running(kube, "worker", "RunInProgress")
    assert "1 run(s) in progress" in condition(workflow, "Running")["message"]
    operator.clock.set(start + 120 * MINUTE)
    workflow = kube.reconciled("worker")
    assert running_reason(workflow) == "RunInProgress"
    assert is_true(workflow, "Ready")
    assert kube.must_child("Deployment", "worker")["spec"]["replicas"] == 1
    assert not stopped_events(kube, "worker", "IdleTimeout")

    # The run finishes: now, long idle, it stops.
    kube.set_run_phase("long-run", "Completed")
    wait_for(
        lambda: stopped_events(kube, "worker", "IdleTimeout"),
        timeout=TIMEOUT,
        what="a Stopped (IdleTimeout) Event once the run completed",
    )

    # A Pending run wakes it.
    kube.create_run("worker", "next-run")
    kube.set_run_phase("next-run", "Pending")
    workflow = wait_running(kube, "worker", "RunWaiting")
    assert "1 run(s) waiting" in condition(workflow, "Running")["message"]


# --- on-demand -----------------------------------------------------------------------------------------


def test_on_demand_starts_for_a_pending_run_and_stops_once_idle(operator: Operator, kube: Kube) -> None:
    start = operator.clock.set(at("2026-06-01T10:00:00Z"))
    kube.create_workflow(workflow_manifest("lazy", lifecycle={"type": "on-demand"}))
    workflow = wait_stopped(kube, "lazy", "NoDemand")
    assert is_true(workflow, "Deployed")
    assert next_transition(workflow) is None

    kube.create_run("lazy", "job-1")
    kube.set_run_phase("job-1", "Pending")
    wait_running(kube, "lazy", "RunWaiting")

    kube.set_run_phase("job-1", "Running")
    wait_running(kube, "lazy", "RunInProgress")

    # The runtime finishes the run and records the activity; the runtime stays for the idle timeout
    # (5 minutes when idleTimeoutMinutes is unset).
    operator.clock.set(start + 2 * MINUTE)
    kube.patch_workflow_status("lazy", {"lastActivityAt": format_time(start + 2 * MINUTE)})
    kube.set_run_phase("job-1", "Completed")
    workflow = wait_running(kube, "lazy", "Active")
    assert next_transition(workflow) == format_time(start + 7 * MINUTE)

    operator.clock.set(start + 6 * MINUTE)
    assert running_reason(kube.reconciled("lazy")) == "Active"

    operator.clock.set(start + 7 * MINUTE)
    stopped = wait_stopped(kube, "lazy", "NoDemand")
    assert next_transition(stopped) is None
    assert running_reason(kube.reconciled("lazy")) == "NoDemand"


# --- scheduled-window ----------------------------------------------------------------------------------


def window_manifest(name: str, timezone: str, window: JSON) -> JSON:
    return workflow_manifest(
        name, lifecycle={"type": "scheduled-window", "schedule": {"timezone": timezone, "windows": [window]}}
    )


def check_outside(operator: Operator, kube: Kube, name: str, now: str, opens: str) -> None:
    """At ``now`` the runtime is stopped, and the published next transition is ``opens``."""
    operator.clock.set(at(now))
    workflow = kube.reconciled(name)
    assert running_reason(workflow) == "OutsideWindow", f"at {now}: {status(workflow)}"
    assert next_transition(workflow) == opens, f"at {now}: {status(workflow)}"
    wait_stopped(kube, name, "OutsideWindow")


def check_inside(operator: Operator, kube: Kube, name: str, now: str, closes: str) -> None:
    """At ``now`` the runtime runs, and the published next transition is ``closes``."""
    operator.clock.set(at(now))
    workflow = kube.reconciled(name)
    assert running_reason(workflow) == "InsideWindow", f"at {now}: {status(workflow)}"
    assert next_transition(workflow) == closes, f"at {now}: {status(workflow)}"
    wait_running(kube, name, "InsideWindow")


def test_scheduled_window_opens_and_closes_across_daylight_saving_changes(
    operator: Operator, kube: Kube
) -> None:
    # Sundays 02:30-04:00 in Berlin. On 2026-03-29 clocks jump from 02:00 CET to 03:00 CEST: 02:30
    # does not exist, so the window opens at the end of the gap (03:00 CEST = 01:00Z) and closes at
    # 04:00 CEST (02:00Z). On 2026-10-25 02:00-03:00 happens twice: it opens at the first 02:30
    # (CEST, 00:30Z) and closes at 04:00 CET (03:00Z), two and a half hours later.
    operator.clock.set(at("2026-03-29T00:45:00Z"))
    kube.create_workflow(
        window_manifest("berlin", "Europe/Berlin", {"days": [0], "startTime": "02:30", "endTime": "04:00"})
    )
    check_outside(operator, kube, "berlin", "2026-03-29T00:45:00Z", opens="2026-03-29T01:00:00Z")
    check_inside(operator, kube, "berlin", "2026-03-29T01:00:00Z", closes="2026-03-29T02:00:00Z")
    check_outside(operator, kube, "berlin", "2026-03-29T02:00:00Z", opens="2026-04-05T00:30:00Z")

    check_outside(operator, kube, "berlin", "2026-10-25T00:29:00Z", opens="2026-10-25T00:30:00Z")
    check_inside(operator, kube, "berlin", "2026-10-25T00:30:00Z", closes="2026-10-25T03:00:00Z")
    # 04:00 CEST would be 02:00Z, but there is no 04:00 CEST that night: still open at 02:59Z.
    operator.clock.set(at("2026-10-25T02:59:00Z"))
    workflow = kube.reconciled("berlin")
    assert running_reason(workflow) == "InsideWindow", condition(workflow, "Running")
    check_outside(operator, kube, "berlin", "2026-10-25T03:00:00Z", opens="2026-11-01T01:30:00Z")

    reasons = kube.event_reasons("berlin")
    assert reasons["Started"] == 2, reasons  # one per window opening
    assert len(stopped_events(kube, "berlin", "OutsideWindow")) == 3, kube.events("berlin")


def test_scheduled_window_crossing_midnight(operator: Operator, kube: Kube) -> None:
    # Fridays 22:00 to 02:00 the next morning, New York time (EDT, UTC-4, in June 2026).
    operator.clock.set(at("2026-06-06T01:59:00Z"))  # Friday 21:59
    kube.create_workflow(
        window_manifest(
            "nightly", "America/New_York", {"days": [5], "startTime": "22:00", "endTime": "02:00"}
        )
    )
    check_outside(operator, kube, "nightly", "2026-06-06T01:59:00Z", opens="2026-06-06T02:00:00Z")
    # Saturday 01:00 is inside Friday's window, although Saturday is not one of the window's days.
    check_inside(operator, kube, "nightly", "2026-06-06T05:00:00Z", closes="2026-06-06T06:00:00Z")
    check_outside(operator, kube, "nightly", "2026-06-06T06:00:00Z", opens="2026-06-13T02:00:00Z")
    # Saturday 23:00 is not a window: Saturday is not one of its days.
    operator.clock.set(at("2026-06-07T03:00:00Z"))
    workflow = kube.reconciled("nightly")
    assert running_reason(workflow) == "OutsideWindow", condition(workflow, "Running")
    assert next_transition(workflow) == "2026-06-13T02:00:00Z"
    assert kube.must_child("Deployment", "nightly")["spec"]["replicas"] == 0
