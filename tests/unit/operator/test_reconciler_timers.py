"""The reconciler's own wake-ups, in virtual time: retries with back-off, exact requeues, coalescing.

:class:`Scripted` replaces the I/O of one reconcile (``_reconcile``) by a script, so what is tested is
only what :class:`~tideflow.operator.reconciler.Reconciler` does around it: when it calls it again.
The event loop is the virtual-time loop of the runtime tests (its clock jumps to the next timer), and
the reconciler's wall clock follows it, so every instant is exact and nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Callable
from typing import cast

from tests.unit.runtime.helpers import run_virtual
from tideflow.core.kube import KubeClient, KubeError
from tideflow.operator import metrics, requeue
from tideflow.operator.reconciler import Reconciler
from tideflow.operator.settings import OperatorSettings

T0 = dt.datetime(2026, 3, 29, 0, 59, 50, tzinfo=dt.UTC)
Result = tuple[dt.datetime | None, bool]
Step = Callable[[dt.datetime], Result]  # now -> (requeue at, wrote something); may raise


def seconds(moment: dt.datetime) -> float:
    return round((moment - T0).total_seconds(), 6)


def fail(now: dt.datetime) -> Result:
    raise KubeError(500, "InternalError", "the API server had a bad moment")


class Scripted(Reconciler):
    """A reconciler whose passes follow ``steps`` (the last one repeats), recording when each ran."""

    def __init__(self, steps: list[Step]) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(
            cast(KubeClient, None), OperatorSettings(), lambda: T0 + dt.timedelta(seconds=loop.time())
        )
        self.steps = steps
        self.calls: list[float] = []
        self.gate: asyncio.Event | None = None

    async def _reconcile(self, namespace: str, name: str) -> Result:
        now = self.clock()
        self.calls.append(seconds(now))
        if self.gate is not None:
            await self.gate.wait()
        step = self.steps[min(len(self.calls) - 1, len(self.steps) - 1)]
        return step(now)


def at(offset: float, *, acted: bool = True) -> Step:
    """A pass that asks to be woken ``offset`` seconds after T0."""
    return lambda now: (T0 + dt.timedelta(seconds=offset), acted)


def test_a_failed_reconcile_is_retried_with_exponential_back_off() -> None:
    async def scenario() -> list[float]:
        reconciler = Scripted([fail, fail, fail, at(3600)])
        before = metrics.RECONCILE_RETRIES._value.get()
        await reconciler.reconcile("ns", "wf")
        await asyncio.sleep(10)
        assert metrics.RECONCILE_RETRIES._value.get() - before == 3
        return reconciler.calls

    calls, _ = run_virtual(scenario())
    assert calls == [0.0, 0.5, 1.5, 3.5]  # 0.5, 1 and 2 seconds apart, then it succeeded


def test_a_failure_at_a_fire_time_does_not_stall_the_schedule() -> None:
    """The pass at the fire time (10 s) and the one after fail: the retries still come within 1.5 s."""

    async def scenario() -> list[float]:
        reconciler = Scripted([at(10), fail, fail, at(20), at(30), at(40)])
        await reconciler.reconcile("ns", "wf")
        await asyncio.sleep(35)
        return reconciler.calls

    calls, _ = run_virtual(scenario())
    assert calls == [0.0, 10.0, 10.5, 11.5, 20.0, 30.0]


def test_a_planned_moment_ahead_cuts_a_long_back_off_short() -> None:
    """After 7 failures the back-off is 32 s; the plan's moment, 5 s away, comes first."""

    async def scenario() -> list[float]:
        steps: list[Step] = [at(1000), *[fail] * 7, at(3600)]
        reconciler = Scripted(steps)
        await reconciler.reconcile("ns", "wf")
        for _ in range(6):  # six more failures, each from an event, not waiting for the timer
            await reconciler.reconcile("ns", "wf")
        reconciler._planned[("ns", "wf")] = T0 + dt.timedelta(seconds=5)
        await reconciler.reconcile("ns", "wf")  # the 7th failure: back-off 32 s, planned moment at 5
        await asyncio.sleep(10)
        return reconciler.calls

    calls, _ = run_virtual(scenario())
    assert calls[-1] == 5.0


def test_failures_that_never_end_are_retried_at_most_once_a_minute() -> None:
    async def scenario() -> list[float]:
        reconciler = Scripted([fail])
        await reconciler.reconcile("ns", "wf")
        await asyncio.sleep(600)
        return reconciler.calls

    calls, _ = run_virtual(scenario())
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert gaps[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert set(gaps[7:]) == {requeue.RETRY_CAP}
    assert len(calls) <= 8 + 600 / requeue.RETRY_CAP


def test_a_planned_moment_is_acted_on_at_its_instant() -> None:
    """Wake-ups 0.2 s and 0.05 s apart are kept: no minimum delay makes a fire time late."""

    async def scenario() -> list[float]:
        reconciler = Scripted([at(0.2), at(0.25), at(10), at(3600)])
        await reconciler.reconcile("ns", "wf")
        await asyncio.sleep(20)
        return reconciler.calls

    calls, _ = run_virtual(scenario())
    assert calls == [0.0, 0.2, 0.25, 10.0]


def test_wake_ups_that_do_nothing_cannot_spin() -> None:
    """A plan that keeps asking for a moment just ahead, and writes nothing: wake-ups thin out."""

    def just_ahead(now: dt.datetime) -> Result:
        return now + dt.timedelta(microseconds=1), False

    async def scenario() -> list[float]:
        reconciler = Scripted([just_ahead])
        await reconciler.reconcile("ns", "wf")
        await asyncio.sleep(30)
        return reconciler.calls

    calls, _ = run_virtual(scenario())
    assert len(calls) < 30 + 15
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert max(gaps) <= requeue.IDLE_FLOOR_CAP + 1e-6


def test_a_wake_up_that_writes_resets_the_floor() -> None:
    async def scenario() -> list[float]:
        idle = [lambda now: (now + dt.timedelta(microseconds=1), False)] * 6
        reconciler = Scripted([*idle, at(10, acted=True), at(10.001), at(3600)])
        await reconciler.reconcile("ns", "wf")
        await asyncio.sleep(20)
        return reconciler.calls

    calls, _ = run_virtual(scenario())
    assert calls[-2:] == [10.0, 10.001]  # exact again once a wake-up did something


def test_requests_during_a_reconcile_coalesce_into_one_more() -> None:
    async def scenario() -> tuple[list[float], float]:
        reconciler = Scripted([at(3600)])
        reconciler.gate = asyncio.Event()
        before = metrics.RECONCILES_COALESCED._value.get()
        first = asyncio.ensure_future(reconciler.reconcile("ns", "wf"))
        await asyncio.sleep(0.1)  # the first one is in flight, blocked on the gate
        burst = [asyncio.ensure_future(reconciler.reconcile("ns", "wf")) for _ in range(10)]
        other = asyncio.ensure_future(reconciler.reconcile("ns", "another"))
        await asyncio.sleep(0.1)
        reconciler.gate.set()
        await asyncio.gather(first, *burst, other)
        return reconciler.calls, metrics.RECONCILES_COALESCED._value.get() - before

    (calls, coalesced), _ = run_virtual(scenario())
    # the first, one for the whole burst (it started after them, so it saw what they were about), and
    # the other Workflow's own
    assert len(calls) == 3
    assert coalesced == 9


def test_the_run_watch_hint_follows_active_runs_per_workflow() -> None:
    async def scenario() -> None:
        reconciler = Scripted([at(3600)])
        assert not reconciler.may_have_active_runs("ns", "wf")
        reconciler.note_run("ns", "wf", "wf-a", active=True)
        reconciler.note_run("ns", "wf", "wf-b", active=True)
        reconciler.note_run("ns", "other", "other-a", active=False)
        assert reconciler.may_have_active_runs("ns", "wf")
        assert not reconciler.may_have_active_runs("ns", "other")
        assert not reconciler.may_have_active_runs("elsewhere", "wf")
        reconciler.note_run("ns", "wf", "wf-a", active=False)  # completed
        assert reconciler.may_have_active_runs("ns", "wf")
        reconciler.note_run("ns", "wf", "wf-b", active=False)  # deleted
        assert not reconciler.may_have_active_runs("ns", "wf")

    run_virtual(scenario())
