"""Exactly once across a SIGKILL restart and a second operator, in about 40 s (the regular suite's variant).

The two-minute chaos test (``test_exactly_once.py``, behind the soak marker) kills operators at many
random points; this one keeps its two hardest moments and runs in every ``make test``. Two operators
(``a`` and ``b``) reconcile the same 10-second interval schedule from the start, so every fire time is
created concurrently by two processes. ``a`` is SIGKILLed 0-150 ms after the first fire time (while it
creates the run and then writes the checkpoint: the window a kill at an arbitrary moment almost never
hits) and restarted 2 s later; ``b`` is SIGKILLed the same way after the second fire time and stays
down. Every fire time from the Workflow's creation to the last one decided must have exactly one
WorkflowRun, under its deterministic name.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from collections import Counter

from tests.integration.schedules.conftest import (
    STARTED_LINE,
    Api,
    Operators,
    checkpoint,
    condition,
    grid,
    on_grid,
    run_name,
    scheduled_time,
    scheduled_workflow,
    wait_for_phase,
)
from tests.support import wait_for
from tideflow.core.clock import format_time, parse_time

PERIOD = 10
SEED = int(os.environ.get("TIDEFLOW_CHAOS_SEED", "20261122"))


def _at(moment: dt.datetime) -> None:
    """Return at the wall-clock instant ``moment`` (the test's kill scheduler)."""
    wait_for(lambda: time.time() >= moment.timestamp(), timeout=3 * PERIOD, interval=0.005, what="an instant")


def test_one_fire_time_per_run_across_a_sigkill_restart_and_a_second_operator(
    operators: Operators, api: Api
) -> None:
    rng = random.Random(SEED)
    a, b = operators.new("a"), operators.new("b")
    a.start()
    b.start()
    wait_for_phase(PERIOD, 1, 3)  # created just after a fire time: the first one is 7-9 s away
    created = api.create_workflow(
        scheduled_workflow(
            "quick",
            {
                "type": "interval",
                "value": f"{PERIOD} seconds",
                "catchup": {"policy": "all", "maxRuns": 10, "windowSeconds": 600},
            },
        )
    )
    since = parse_time(created["metadata"]["creationTimestamp"])
    first, second, third = grid(PERIOD, since, since + dt.timedelta(seconds=3 * PERIOD + 1))[:3]

    kill_a = first + dt.timedelta(seconds=rng.uniform(0, 0.15))
    _at(kill_a)
    a.kill()
    _at(kill_a + dt.timedelta(seconds=2))
    a.start(wait=False)
    _at(second + dt.timedelta(seconds=rng.uniform(0, 0.15)))
    b.kill()

    def decided_through_third() -> bool:
        reached = checkpoint(api.workflow("quick"))
        return reached is not None and reached >= third

    wait_for(decided_through_third, timeout=2 * PERIOD, what=f"the checkpoint to pass {format_time(third)}")
    a.stop()

    runs = api.runs("quick")
    times = [scheduled_time(run) for run in runs]
    duplicates = sorted(format_time(t) for t, n in Counter(times).items() if n > 1)
    assert not duplicates, f"fire times with more than one run: {duplicates}\n{operators.logs()}"
    for run, moment in zip(runs, times, strict=True):
        assert run["metadata"]["name"] == run_name("quick", moment)
        assert on_grid(moment, PERIOD), run["spec"]["scheduledTime"]
    reached = checkpoint(api.workflow("quick"))
    assert reached is not None
    expected = grid(PERIOD, since, max([reached, *times]))
    assert sorted(times) == expected, (
        f"runs {[format_time(t) for t in times]}, expected {[format_time(t) for t in expected]}\n"
        f"{operators.logs()}"
    )
    assert len(expected) >= 3
    assert a.kills == 1
    assert b.kills == 1
    assert a.log().count(STARTED_LINE) == 2, "a did not come back after its SIGKILL"
    assert b.log().count(STARTED_LINE) == 1
    assert condition(api.workflow("quick"), "Scheduled").get("status") == "True"
