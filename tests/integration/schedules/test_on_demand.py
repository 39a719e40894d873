"""A scheduled ``on-demand`` workflow with the real runtime: woken ahead of its fire time, run, stopped idle.

The operator runs with the default runtime command (``python -m tideflow.runtime`` in the sandbox's
pods), a 15-second wake lead and a 1-second resync. Its clock is a ``TickingClock``: real time, so
that it agrees with the runtime's and the API server's timestamps, until the test moves it past the
planned stop, because the shortest idle timeout (5 minutes) is too long to wait for.

The interval is picked so that its next fire time is 30-42 s away (the runtime is seen at zero
first, then woken ``LEAD`` seconds ahead) and the one after it is at least 10 minutes later (after
the jump of the clock, the next wake is still far away). Interval fire times are multiples of the
interval since the epoch, so any whole number of seconds of at least 10 is a valid schedule.
"""

from __future__ import annotations

import datetime as dt
import math
import time

from tests.integration.schedules.conftest import (
    JSON,
    Api,
    Operators,
    TickingClock,
    condition,
    pod_ready,
    run_name,
    scheduled_workflow,
    status,
    utc_now,
)
from tests.support import wait_for
from tideflow.core.clock import format_time, parse_time

NAME = "nightly"
LEAD = 15
IDLE_MINUTES = 5  # the minimum idleTimeoutMinutes


def pick_interval(ahead_low: float, ahead_high: float) -> tuple[int, dt.datetime]:
    """An interval of 600-3599 s whose next fire time is ``ahead_low``-``ahead_high`` s from now."""

    def probe() -> tuple[int, dt.datetime] | None:
        now = time.time()
        for seconds in range(600, 3600):
            fire = (math.floor(now / seconds) + 1) * seconds
            if ahead_low <= fire - now <= ahead_high:
                return seconds, dt.datetime.fromtimestamp(fire, dt.UTC)
        return None

    return wait_for(probe, timeout=30, interval=0.5, what="an interval with a fire time soon")


def _stopped(api: Api) -> tuple[JSON, JSON] | None:
    workflow, deployment = api.workflow(NAME), api.deployment(NAME)
    running = condition(workflow, "Running")
    if deployment is None or running.get("status") != "False" or deployment["spec"]["replicas"] != 0:
        return None
    return workflow, deployment


def _woken(api: Api) -> tuple[dt.datetime, str] | None:
    deployment = api.deployment(NAME)
    if deployment is None or deployment["spec"]["replicas"] != 1:
        return None
    return utc_now(), str(condition(api.workflow(NAME), "Running").get("reason"))


def _ready(api: Api) -> tuple[dt.datetime, str] | None:
    ready = [pod for pod in api.pods(NAME) if pod_ready(pod)]
    return (utc_now(), ready[0]["metadata"]["name"]) if ready else None


def _ended(api: Api, name: str) -> JSON | None:
    run = api.find_run(name)
    if run is None:
        return None
    return run if (run.get("status") or {}).get("phase") in ("Completed", "Failed", "Cancelled") else None


def _planned_stop(api: Api) -> JSON | None:
    workflow = api.workflow(NAME)
    current = status(workflow)
    if condition(workflow, "Running").get("reason") != "Active" or not current.get("nextTransitionAt"):
        return None
    return workflow if current.get("lastActivityAt") else None


def test_on_demand_runtime_wakes_ahead_of_the_fire_time_and_stops_once_idle(
    operators: Operators, api: Api, ticking_clock: TickingClock
) -> None:
    interval, fire = pick_interval(LEAD + 15, LEAD + 27)
    operators.new(
        "a",
        real_runtime=True,
        TIDEFLOW_CLOCK_FILE=str(ticking_clock.path),
        TIDEFLOW_RESYNC_SECONDS="1",
        TIDEFLOW_SCHEDULE_WAKE_LEAD_SECONDS=str(LEAD),
    ).start()
    api.create_workflow(
        scheduled_workflow(
            NAME,
            {"type": "interval", "value": f"{interval} seconds"},
            lifecycle={"type": "on-demand", "idleTimeoutMinutes": IDLE_MINUTES},
        )
    )

    # Before the wake lead: deployed, at zero, the next run announced.
    workflow, _ = wait_for(lambda: _stopped(api), timeout=20, what="the on-demand runtime at zero")
    seen_at_zero = utc_now()
    assert seen_at_zero < fire - dt.timedelta(seconds=LEAD), "too late to see it at zero before the lead"
    assert condition(workflow, "Running")["reason"] == "NoDemand"
    assert status(workflow)["nextRunAt"] == format_time(fire)
    assert not api.pods(NAME)

    # Woken LEAD seconds ahead, ready before the fire time.
    woken_at, reason = wait_for(lambda: _woken(api), timeout=LEAD + 25, interval=0.1, what="the wake")
    assert woken_at >= fire - dt.timedelta(seconds=LEAD + 1), f"woken at {woken_at}, before the lead"
    assert reason == "RunWaiting", reason
    ready_at, pod = wait_for(lambda: _ready(api), timeout=30, interval=0.1, what="a ready runtime pod")
    assert ready_at < fire, f"the runtime was ready only at {ready_at}, after the fire time {fire}"

    # The run for the fire time is claimed by that runtime and completes.
    name = run_name(NAME, fire)
    run = wait_for(lambda: _ended(api, name), timeout=30, what=f"{name} to end")
    assert run["status"]["phase"] == "Completed", run["status"]
    assert run["spec"]["triggerType"] == "schedule"
    assert run["status"].get("claimedBy") == pod, run["status"]
    started = parse_time(run["status"]["startedAt"])
    lateness = (started - fire).total_seconds()
    created = (parse_time(run["metadata"]["creationTimestamp"]) - fire).total_seconds()
    ahead = (fire - woken_at).total_seconds(), (fire - ready_at).total_seconds()
    print(
        f"interval {interval}s, fire time {format_time(fire)}: woken {ahead[0]:.2f}s and ready "
        f"{ahead[1]:.2f}s ahead; created +{created:.0f}s (whole seconds), "
        f"startedAt - scheduledTime = {lateness:.3f}s"
    )
    assert 0 <= lateness < 5, f"startedAt - scheduledTime = {lateness:.3f}s for a runtime woken ahead"

    # Idle now: still up, and the planned stop is the last activity plus the idle timeout.
    workflow = wait_for(lambda: _planned_stop(api), timeout=20, what="the planned stop")
    running = condition(workflow, "Running")
    last_activity = parse_time(status(workflow)["lastActivityAt"])
    planned = parse_time(status(workflow)["nextTransitionAt"])
    assert running["status"] == "True", running
    assert last_activity >= started - dt.timedelta(seconds=1), (last_activity, started)
    assert format_time(planned) == format_time(last_activity + dt.timedelta(minutes=IDLE_MINUTES))
    deployment = api.deployment(NAME)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 1
    # "Stopped" Events: one for the Running condition and one for deploymentStatus, both at the start;
    # a premature stop (say, before the runtime's activity report arrived) would add two more.
    stops = [event["message"] for event in api.events(NAME, reason="Stopped")]
    assert len(stops) == 2, f"stopped again between the run and the planned stop: {stops}"

    # Past the planned stop (and past a trailing activity report): back to zero, still scheduled.
    ticking_clock.jump_to(planned + dt.timedelta(seconds=30))
    workflow, _ = wait_for(lambda: _stopped(api), timeout=20, what="the runtime to stop once idle")
    assert condition(workflow, "Running")["reason"] == "NoDemand"
    assert status(workflow).get("stoppedReason") == "NoDemand"
    assert status(workflow)["nextRunAt"] == format_time(fire + dt.timedelta(seconds=interval))
    wait_for(lambda: not api.pods(NAME), timeout=45, what="the runtime pod to go")
