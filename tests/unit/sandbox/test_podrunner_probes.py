"""The pod runner's probes: each probe on its own timings, as a kubelet runs them, in virtual time.

The regression: liveness used the readiness probe's timings (no initial delay, a check every second
while not ready, three strikes), so a runtime that took more than about 3 s to answer ``/healthz`` was
killed before it ever started. :func:`run_probe` is driven here with a fake ``sleep`` that only moves a
virtual clock, and a check that answers from that clock, so every instant is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tideflow.core.models import WorkflowSpec
from tideflow.operator import builders
from tideflow.operator.settings import OperatorSettings
from tideflow.sandbox.podrunner import ProbeState, ProbeTiming, run_probe

from ..operator import stored_workflow


@dataclass
class Virtual:
    """A virtual clock, a check that fails until ``healthy_from`` (or from ``sick_from`` on), a log."""

    healthy_from: float = 0.0
    sick_from: float = float("inf")
    until: float = 120.0
    now: float = 0.0
    checks: list[float] = field(default_factory=list)
    changes: list[tuple[float, bool]] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def check(self) -> bool:
        self.checks.append(self.now)
        return self.healthy_from <= self.now < self.sick_from

    def change(self, state: bool) -> None:
        self.changes.append((self.now, state))

    def running(self) -> bool:
        return self.now < self.until


def runtime_container() -> dict[str, Any]:
    """The runtime container of the Deployment the operator builds."""
    workflow = stored_workflow()
    spec = WorkflowSpec.model_validate(workflow["spec"])
    deployment = builders.deployment(workflow, spec, OperatorSettings(), 1)
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


async def liveness(virtual: Virtual, probe: dict[str, Any]) -> None:
    await run_probe(
        ProbeTiming.of(probe),
        virtual.check,
        virtual.change,
        virtual.running,
        stop_on_failure=True,
        sleep=virtual.sleep,
    )


async def readiness(virtual: Virtual, probe: dict[str, Any]) -> None:
    await run_probe(
        ProbeTiming.of(probe),
        virtual.check,
        virtual.change,
        virtual.running,
        initially=False,
        fast_while_failing=True,
        sleep=virtual.sleep,
    )


def test_timings_default_like_kubernetes() -> None:
    assert ProbeTiming.of({"httpGet": {"path": "/"}}) == ProbeTiming(0.0, 10.0, 1.0, 3, 1)
    assert ProbeTiming.of(
        {
            "initialDelaySeconds": 5,
            "periodSeconds": 7,
            "timeoutSeconds": 4,
            "failureThreshold": 2,
            "successThreshold": 2,
        }
    ) == ProbeTiming(5.0, 7.0, 4.0, 2, 2)


def test_the_runtime_probes_have_different_timings() -> None:
    container = runtime_container()
    live, ready = ProbeTiming.of(container["livenessProbe"]), ProbeTiming.of(container["readinessProbe"])
    assert live.initial_delay >= 5
    assert (live.initial_delay, live.period) != (ready.initial_delay, ready.period)


async def test_a_runtime_slow_to_start_is_not_killed_by_liveness() -> None:
    """Healthy only after 8 s: the operator's liveness probe (5 s delay, every 10 s) keeps it."""
    virtual = Virtual(healthy_from=8.0, until=60.0)
    await liveness(virtual, runtime_container()["livenessProbe"])
    assert virtual.changes == []
    assert virtual.checks[:3] == [5.0, 15.0, 25.0]


async def test_readiness_timings_would_have_killed_it() -> None:
    """The same runtime probed for liveness on the readiness probe's timings dies at 4 s: the old bug."""
    virtual = Virtual(healthy_from=8.0, until=60.0)
    await liveness(virtual, runtime_container()["readinessProbe"])
    assert virtual.changes == [(4.0, False)]


async def test_liveness_kills_after_failure_threshold_in_a_row_and_stops_probing() -> None:
    virtual = Virtual(healthy_from=0.0, sick_from=30.0)
    await liveness(virtual, {"initialDelaySeconds": 5, "periodSeconds": 10, "failureThreshold": 3})
    # Checks at 5, 15, 25 pass; 35, 45, 55 fail: killed at the third failure, then no more checks.
    assert virtual.checks == [5.0, 15.0, 25.0, 35.0, 45.0, 55.0]
    assert virtual.changes == [(55.0, False)]


async def test_a_failure_between_successes_resets_the_count() -> None:
    state = ProbeState(ProbeTiming(failure_threshold=3), initially=True)
    results = [False, False, True, False, False, True, False, False, False]
    assert [state.observe(ok) for ok in results] == [None] * 8 + [False]


async def test_readiness_becomes_ready_at_the_first_success_retrying_every_second() -> None:
    virtual = Virtual(healthy_from=3.5, until=10.0)
    await readiness(virtual, {"periodSeconds": 5, "failureThreshold": 3})
    assert virtual.checks[:5] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert virtual.changes == [(4.0, True)]
    assert virtual.checks[5] == 9.0  # ready: back to the probe's own period


async def test_readiness_turns_unready_only_after_failure_threshold_failures() -> None:
    virtual = Virtual(healthy_from=0.0, sick_from=10.0, until=40.0)
    await readiness(virtual, {"initialDelaySeconds": 2, "periodSeconds": 4, "failureThreshold": 2})
    # Ready at 2; checks every 4 s: 10 fails, 14 fails -> not ready at 14; then every second.
    assert virtual.changes == [(2.0, True), (14.0, False)]
    assert virtual.checks[:7] == [2.0, 6.0, 10.0, 14.0, 15.0, 16.0, 17.0]


@pytest.mark.parametrize("threshold", [1, 2, 5])
async def test_success_threshold_is_honoured(threshold: int) -> None:
    virtual = Virtual(healthy_from=0.0, until=20.0)
    await readiness(virtual, {"periodSeconds": 3, "successThreshold": threshold})
    assert virtual.changes[0] == (float(threshold - 1), True)
