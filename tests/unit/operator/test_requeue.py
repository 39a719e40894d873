"""When the reconciler wakes a Workflow on its own (:mod:`tideflow.operator.requeue`).

Two things are pinned here: a failed reconcile is retried with a bounded exponential back-off that
never spins, and a planned moment (a schedule's fire time) is acted on at that instant, with a floor
only for a run of wake-ups that did nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from tideflow.operator import requeue

T0 = dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)


def test_retry_delay_doubles_from_half_a_second_up_to_the_cap() -> None:
    delays = [requeue.retry_delay(n) for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert requeue.retry_delay(0) == 0.0  # no failure yet: nothing to wait for


def test_retry_delay_is_bounded_for_any_number_of_failures() -> None:
    assert requeue.retry_delay(10_000) == requeue.RETRY_CAP
    assert requeue.retry_delay(3, base=0.1, cap=0.3) == pytest.approx(0.3)


def test_retries_never_spin_however_long_the_failures_last() -> None:
    """An hour of a failing API server costs a bounded number of attempts, never one per loop turn."""
    elapsed, attempts = 0.0, 0
    while elapsed < 3600:
        attempts += 1
        delay = requeue.retry_wake_delay(attempts, None, T0)
        assert delay >= requeue.RETRY_BASE
        elapsed += delay
    assert attempts < 3600 / requeue.RETRY_CAP + 10


def test_a_planned_moment_ahead_shortens_the_retry() -> None:
    planned = T0 + 3 * SECOND
    assert requeue.retry_wake_delay(8, planned, T0) == 3.0  # the fire time comes before the back-off
    assert requeue.retry_wake_delay(1, planned, T0) == 0.5  # the back-off comes first


@pytest.mark.parametrize("past", [dt.timedelta(0), SECOND, dt.timedelta(hours=1)])
def test_a_planned_moment_already_past_never_shortens_the_retry(past: dt.timedelta) -> None:
    """The failure may be the reconcile that moment woke: retrying it at once would spin."""
    assert requeue.retry_wake_delay(1, T0 - past, T0) == requeue.RETRY_BASE


def test_a_planned_moment_is_woken_at_its_instant() -> None:
    assert requeue.wake_delay(T0 + dt.timedelta(milliseconds=1), T0) == pytest.approx(0.001)
    assert requeue.wake_delay(T0 + 10 * SECOND, T0) == 10.0
    assert requeue.wake_delay(T0 - SECOND, T0) == 0.0
    assert requeue.wake_delay(T0 + dt.timedelta(days=2), T0) == requeue.MAX_DELAY


def test_one_idle_wake_up_rearms_exactly() -> None:
    """A timer that fired a hair early (its reconcile did nothing) comes back at the exact instant."""
    assert requeue.wake_delay(T0 + dt.timedelta(microseconds=300), T0, idle_wakeups=1) == pytest.approx(
        0.0003
    )


def test_idle_wake_ups_in_a_row_get_a_growing_bounded_floor() -> None:
    floors = [requeue.idle_floor(n) for n in range(8)]
    assert floors[:2] == [0.0, 0.0]
    assert floors[2:6] == [0.01, 0.02, 0.04, 0.08]
    assert all(later >= earlier for earlier, later in itertools.pairwise(floors))
    assert requeue.idle_floor(1_000) == requeue.IDLE_FLOOR_CAP
    just_ahead = T0 + dt.timedelta(microseconds=1)
    assert requeue.wake_delay(just_ahead, T0, idle_wakeups=4) == pytest.approx(0.04)


def test_a_plan_that_keeps_asking_for_now_cannot_spin() -> None:
    """A planned moment always just ahead and reconciles that do nothing: wake-ups thin out to 1/s."""
    idle, elapsed, wakeups = 0, 0.0, 0
    while elapsed < 60:
        idle = requeue.idle_wakeups(idle, woken=True, acted=False)
        elapsed += requeue.wake_delay(T0 + dt.timedelta(microseconds=1), T0, idle)
        wakeups += 1
    assert wakeups < 60 + 20


def test_idle_count_resets_when_a_reconcile_writes_and_ignores_event_driven_ones() -> None:
    assert requeue.idle_wakeups(3, woken=True, acted=True) == 0
    assert requeue.idle_wakeups(3, woken=False, acted=True) == 0
    assert requeue.idle_wakeups(3, woken=True, acted=False) == 4
    assert requeue.idle_wakeups(3, woken=False, acted=False) == 3
