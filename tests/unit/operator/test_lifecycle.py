"""Unit tests of the lifecycle policies (:mod:`tideflow.operator.lifecycle`), decided at given instants.

Each policy's documented semantics is checked just before and just after the instants where it changes
its mind, including weekly windows in time zones with daylight saving: a wall-clock time in a spring
gap takes effect at the end of the gap, one in an autumn repeated hour at its first pass, and a
window lasts its wall-clock span whatever the UTC offset does in between.

Daylight saving in 2026: Europe/Berlin jumps 02:00 -> 03:00 on Sunday 29 March (at 01:00Z) and falls
back 03:00 -> 02:00 on Sunday 25 October (at 01:00Z); America/New_York jumps 02:00 -> 03:00 on Sunday
8 March (at 07:00Z) and falls back 02:00 -> 01:00 on Sunday 1 November (at 06:00Z).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tideflow.core.models import Lifecycle, LifecycleSchedule
from tideflow.operator import lifecycle
from tideflow.operator.lifecycle import Decision, Observed, decide, local_instant, window_intervals

SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SUNDAY, MONDAY, TUESDAY, FRIDAY, SATURDAY = 0, 1, 2, 5, 6
EVERY_DAY = [0, 1, 2, 3, 4, 5, 6]


def utc(text: str) -> dt.datetime:
    """An aware UTC instant from ``2026-01-02T22:00:00`` (the ``Z`` is implied)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def policy(kind: str, **fields: Any) -> Lifecycle:
    return Lifecycle.model_validate({"type": kind, **fields})


def windows(timezone: str, *spans: tuple[list[int], str, str]) -> Lifecycle:
    """A scheduled-window lifecycle from ``(days, startTime, endTime)`` triples."""
    return policy(
        "scheduled-window",
        schedule={
            "timezone": timezone,
            "windows": [{"days": days, "startTime": start, "endTime": end} for days, start, end in spans],
        },
    )


def schedule_of(spec: Lifecycle) -> LifecycleSchedule:
    assert spec.schedule is not None
    return spec.schedule


def interval_starting(spec: Lifecycle, zone: ZoneInfo, start: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The one window occurrence that opens at ``start``."""
    found = [(s, e) for s, e in window_intervals(schedule_of(spec), zone, start) if s == start]
    assert len(found) == 1, f"expected one window opening at {start}, got {found}"
    return found[0]


def assert_inside(decision: Decision, replicas: int, closes: dt.datetime) -> None:
    assert (decision.replicas, decision.reason) == (replicas, lifecycle.INSIDE_WINDOW), decision
    assert decision.next_transition == closes
    assert not decision.stopped


def assert_outside(decision: Decision, opens: dt.datetime | None) -> None:
    assert (decision.replicas, decision.reason) == (0, lifecycle.OUTSIDE_WINDOW), decision
    assert decision.next_transition == opens
    assert decision.stopped


# --- always-on and the explicit stop --------------------------------------------------------------------


def test_always_on_runs_the_spec_replicas_whatever_was_observed() -> None:
    now = utc("2026-01-05T12:00:00")
    long_idle = Observed(last_activity_at=now - dt.timedelta(days=30), started_at=now - dt.timedelta(days=30))
    decision = decide(policy("always-on"), 3, long_idle, now)
    assert decision == Decision(3, lifecycle.ALWAYS_ON, decision.message, None)
    assert not decision.stopped


def test_the_default_lifecycle_is_always_on() -> None:
    assert decide(Lifecycle(), 2, Observed(), utc("2026-01-05T12:00:00")).reason == lifecycle.ALWAYS_ON


BUSY = Observed(
    last_activity_at=utc("2026-01-05T11:59:00"),
    started_at=utc("2026-01-05T11:58:00"),
    pending_runs=4,
    running_runs=2,
)
EVERY_POLICY = [
    policy("always-on"),
    policy("idle-shutdown", idleTimeoutMinutes=15),
    policy("on-demand"),
    windows("UTC", (EVERY_DAY, "00:00", "23:59")),
    windows("Mars/Olympus_Mons", (EVERY_DAY, "00:00", "23:59")),
]


@pytest.mark.parametrize("spec", EVERY_POLICY, ids=lambda spec: str(spec.type))
def test_an_explicit_stop_wins_over_every_policy_even_with_runs_waiting(spec: Lifecycle) -> None:
    decision = decide(spec, 0, BUSY, utc("2026-01-05T12:00:00"))
    assert (decision.replicas, decision.reason) == (0, lifecycle.STOPPED_BY_USER)
    assert decision.stopped
    assert decision.next_transition is None


# --- idle-shutdown --------------------------------------------------------------------------------------

IDLE_15 = policy("idle-shutdown", idleTimeoutMinutes=15)
T0 = utc("2026-01-05T12:00:00")


def test_idle_shutdown_is_active_before_the_timeout_and_publishes_when_it_stops() -> None:
    seen = Observed(last_activity_at=T0, started_at=T0 - dt.timedelta(hours=1))
    decision = decide(IDLE_15, 2, seen, T0 + 15 * MINUTE - SECOND)
    assert (decision.replicas, decision.reason) == (2, lifecycle.ACTIVE)
    assert decision.next_transition == T0 + 15 * MINUTE


@pytest.mark.parametrize("after", [dt.timedelta(0), SECOND, dt.timedelta(days=3)])
def test_idle_shutdown_stops_at_and_after_the_timeout(after: dt.timedelta) -> None:
    seen = Observed(last_activity_at=T0, started_at=T0 - dt.timedelta(hours=1))
    decision = decide(IDLE_15, 2, seen, T0 + 15 * MINUTE + after)
    assert (decision.replicas, decision.reason) == (0, lifecycle.IDLE_TIMEOUT)
    assert decision.stopped
    assert decision.next_transition is None


def test_idle_shutdown_measures_from_the_start_when_nothing_ran_yet() -> None:
    seen = Observed(last_activity_at=None, started_at=T0)
    active = decide(IDLE_15, 1, seen, T0 + 14 * MINUTE)
    assert (active.replicas, active.reason, active.next_transition) == (1, lifecycle.ACTIVE, T0 + 15 * MINUTE)
    assert decide(IDLE_15, 1, seen, T0 + 15 * MINUTE).reason == lifecycle.IDLE_TIMEOUT


def test_idle_shutdown_measures_from_a_restart_more_recent_than_the_last_activity() -> None:
    seen = Observed(last_activity_at=T0 - dt.timedelta(hours=5), started_at=T0)
    decision = decide(IDLE_15, 1, seen, T0 + 10 * MINUTE)
    assert (decision.reason, decision.next_transition) == (lifecycle.ACTIVE, T0 + 15 * MINUTE)


def test_idle_shutdown_measures_from_activity_more_recent_than_the_start() -> None:
    seen = Observed(last_activity_at=T0 + 10 * MINUTE, started_at=T0)
    decision = decide(IDLE_15, 1, seen, T0 + 20 * MINUTE)
    assert (decision.reason, decision.next_transition) == (lifecycle.ACTIVE, T0 + 25 * MINUTE)


def test_idle_shutdown_never_stops_while_a_run_is_running() -> None:
    seen = Observed(last_activity_at=T0, started_at=T0, running_runs=1)
    decision = decide(IDLE_15, 2, seen, T0 + dt.timedelta(hours=6))
    assert (decision.replicas, decision.reason) == (2, lifecycle.RUN_IN_PROGRESS)
    assert "1 run(s)" in decision.message


def test_idle_shutdown_is_woken_by_a_pending_run() -> None:
    seen = Observed(last_activity_at=T0, started_at=T0, pending_runs=3)
    decision = decide(IDLE_15, 2, seen, T0 + dt.timedelta(hours=6))
    assert (decision.replicas, decision.reason) == (2, lifecycle.RUN_WAITING)
    assert "3 run(s)" in decision.message


def test_idle_shutdown_timeout_follows_idle_timeout_minutes() -> None:
    spec = policy("idle-shutdown", idleTimeoutMinutes=90)
    seen = Observed(last_activity_at=T0)
    assert decide(spec, 1, seen, T0 + 89 * MINUTE).next_transition == T0 + 90 * MINUTE
    assert decide(spec, 1, seen, T0 + 90 * MINUTE).reason == lifecycle.IDLE_TIMEOUT


# --- on-demand ------------------------------------------------------------------------------------------

ON_DEMAND = policy("on-demand")


def test_on_demand_is_stopped_without_demand() -> None:
    decision = decide(ON_DEMAND, 2, Observed(), T0)
    assert (decision.replicas, decision.reason, decision.next_transition) == (0, lifecycle.NO_DEMAND, None)


def test_on_demand_is_not_kept_up_by_a_recent_start_alone() -> None:
    decision = decide(ON_DEMAND, 2, Observed(started_at=T0), T0 + MINUTE)
    assert (decision.replicas, decision.reason) == (0, lifecycle.NO_DEMAND)


@pytest.mark.parametrize(
    ("seen", "reason"),
    [
        (Observed(pending_runs=1), lifecycle.RUN_WAITING),
        (Observed(running_runs=1), lifecycle.RUN_IN_PROGRESS),
        (Observed(pending_runs=2, running_runs=1), lifecycle.RUN_IN_PROGRESS),
    ],
)
def test_on_demand_runs_while_runs_wait_or_execute(seen: Observed, reason: str) -> None:
    decision = decide(ON_DEMAND, 2, seen, T0)
    assert (decision.replicas, decision.reason) == (2, reason)


def test_on_demand_stays_up_for_the_default_idle_timeout_after_the_last_activity() -> None:
    seen = Observed(last_activity_at=T0)
    up = decide(ON_DEMAND, 1, seen, T0 + 5 * MINUTE - SECOND)
    assert (up.replicas, up.reason, up.next_transition) == (1, lifecycle.ACTIVE, T0 + 5 * MINUTE)
    down = decide(ON_DEMAND, 1, seen, T0 + 5 * MINUTE)
    assert (down.replicas, down.reason) == (0, lifecycle.NO_DEMAND)


def test_on_demand_honours_idle_timeout_minutes() -> None:
    spec = policy("on-demand", idleTimeoutMinutes=20)
    seen = Observed(last_activity_at=T0)
    assert decide(spec, 1, seen, T0 + 19 * MINUTE).next_transition == T0 + 20 * MINUTE
    assert decide(spec, 1, seen, T0 + 20 * MINUTE).reason == lifecycle.NO_DEMAND


# --- scheduled-window: days, midnight, merging, time zones ----------------------------------------------


def test_days_count_from_sunday() -> None:
    spec = windows("UTC", ([SUNDAY], "09:00", "17:00"))
    assert_inside(decide(spec, 1, Observed(), utc("2026-01-04T12:00:00")), 1, utc("2026-01-04T17:00:00"))
    assert_outside(decide(spec, 1, Observed(), utc("2026-01-05T12:00:00")), utc("2026-01-11T09:00:00"))


def test_a_window_is_closed_at_its_end_and_open_at_its_start() -> None:
    spec = windows("UTC", ([MONDAY], "09:00", "17:00"))
    assert_outside(decide(spec, 2, Observed(), utc("2026-01-05T08:59:59")), utc("2026-01-05T09:00:00"))
    assert_inside(decide(spec, 2, Observed(), utc("2026-01-05T09:00:00")), 2, utc("2026-01-05T17:00:00"))
    assert_inside(decide(spec, 2, Observed(), utc("2026-01-05T16:59:59")), 2, utc("2026-01-05T17:00:00"))
    assert_outside(decide(spec, 2, Observed(), utc("2026-01-05T17:00:00")), utc("2026-01-12T09:00:00"))


def test_a_window_crossing_midnight_closes_the_next_day() -> None:
    spec = windows("UTC", ([FRIDAY], "22:00", "02:00"))  # Friday 2026-01-02 22:00 -> Saturday 02:00
    assert_outside(decide(spec, 1, Observed(), utc("2026-01-02T21:59:59")), utc("2026-01-02T22:00:00"))
    assert_inside(decide(spec, 1, Observed(), utc("2026-01-02T22:00:00")), 1, utc("2026-01-03T02:00:00"))
    assert_inside(decide(spec, 1, Observed(), utc("2026-01-03T01:00:00")), 1, utc("2026-01-03T02:00:00"))
    assert_outside(decide(spec, 1, Observed(), utc("2026-01-03T02:00:00")), utc("2026-01-09T22:00:00"))


def test_a_saturday_night_window_wraps_into_the_next_week() -> None:
    spec = windows("UTC", ([SATURDAY], "23:00", "01:00"))
    sunday = utc("2026-01-04T00:30:00")
    assert_inside(decide(spec, 1, Observed(), sunday), 1, utc("2026-01-04T01:00:00"))


def test_touching_windows_merge_into_one_stretch() -> None:
    spec = windows("UTC", ([MONDAY], "22:00", "02:00"), ([TUESDAY], "02:00", "06:00"))
    tuesday_six = utc("2026-01-06T06:00:00")
    assert_inside(decide(spec, 1, Observed(), utc("2026-01-05T23:00:00")), 1, tuesday_six)
    assert_inside(decide(spec, 1, Observed(), utc("2026-01-06T02:00:00")), 1, tuesday_six)
    assert_inside(decide(spec, 1, Observed(), utc("2026-01-06T05:59:59")), 1, tuesday_six)
    assert_outside(decide(spec, 1, Observed(), tuesday_six), utc("2026-01-12T22:00:00"))


def test_overlapping_windows_close_at_the_later_end() -> None:
    spec = windows("UTC", ([MONDAY], "08:00", "12:00"), ([MONDAY], "10:00", "14:00"))
    assert_inside(decide(spec, 1, Observed(), utc("2026-01-05T09:00:00")), 1, utc("2026-01-05T14:00:00"))


def test_the_next_opening_is_the_nearest_of_several_windows() -> None:
    spec = windows("UTC", ([FRIDAY], "09:00", "10:00"), ([TUESDAY, SATURDAY], "18:00", "19:00"))
    assert_outside(decide(spec, 1, Observed(), utc("2026-01-05T12:00:00")), utc("2026-01-06T18:00:00"))


def test_windows_are_read_in_their_time_zone() -> None:
    spec = windows("Asia/Tokyo", ([MONDAY], "09:00", "17:00"))  # UTC+9, no daylight saving
    assert_outside(decide(spec, 1, Observed(), utc("2026-01-04T23:59:59")), utc("2026-01-05T00:00:00"))
    assert_inside(decide(spec, 1, Observed(), utc("2026-01-05T00:00:00")), 1, utc("2026-01-05T08:00:00"))


def test_a_whole_week_of_touching_windows_publishes_no_closing() -> None:
    """Two windows that together cover every hour of every day never close: no stop to announce."""
    spec = windows("UTC", (EVERY_DAY, "00:00", "12:00"), (EVERY_DAY, "12:00", "00:00"))
    decision = decide(spec, 1, Observed(), utc("2026-01-05T12:00:00"))
    assert (decision.replicas, decision.reason) == (1, lifecycle.INSIDE_WINDOW)
    assert decision.next_transition is None, f"publishes a stop that never comes: {decision.next_transition}"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Europe/Atlantis", "Not_A_Zone"])
def test_an_unknown_time_zone_keeps_the_runtime_stopped(zone: str) -> None:
    spec = windows(zone, (EVERY_DAY, "00:00", "23:59"))
    decision = decide(spec, 2, Observed(pending_runs=1), utc("2026-01-05T12:00:00"))
    assert (decision.replicas, decision.reason) == (0, lifecycle.BAD_TIME_ZONE)
    assert decision.next_transition is None
    assert zone in decision.message


def test_window_intervals_are_utc_instants() -> None:
    spec = windows("Europe/Berlin", ([MONDAY], "09:00", "17:00"))  # winter: UTC+1
    start, end = interval_starting(spec, BERLIN, utc("2026-01-05T08:00:00"))
    assert end == utc("2026-01-05T16:00:00")
    assert start.utcoffset() == dt.timedelta(0)
    assert end.utcoffset() == dt.timedelta(0)


# --- daylight saving: local_instant ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "wall", "expected"),
    [
        # Berlin spring gap: 02:00-02:59 does not exist on 2026-03-29; its end is 03:00 CEST = 01:00Z.
        (BERLIN, "2026-03-29", "01:59", "2026-03-29T00:59:00"),
        (BERLIN, "2026-03-29", "02:00", "2026-03-29T01:00:00"),
        (BERLIN, "2026-03-29", "02:30", "2026-03-29T01:00:00"),
        (BERLIN, "2026-03-29", "02:59", "2026-03-29T01:00:00"),
        (BERLIN, "2026-03-29", "03:00", "2026-03-29T01:00:00"),
        (BERLIN, "2026-03-29", "03:01", "2026-03-29T01:01:00"),
        # Berlin autumn repeat: 02:00-02:59 happens twice on 2026-10-25; the first pass is CEST (UTC+2).
        (BERLIN, "2026-10-25", "01:59", "2026-10-24T23:59:00"),
        (BERLIN, "2026-10-25", "02:00", "2026-10-25T00:00:00"),
        (BERLIN, "2026-10-25", "02:30", "2026-10-25T00:30:00"),
        (BERLIN, "2026-10-25", "03:00", "2026-10-25T02:00:00"),
        # New York spring gap: 02:00-02:59 does not exist on 2026-03-08; its end is 03:00 EDT = 07:00Z.
        (NEW_YORK, "2026-03-08", "01:59", "2026-03-08T06:59:00"),
        (NEW_YORK, "2026-03-08", "02:30", "2026-03-08T07:00:00"),
        (NEW_YORK, "2026-03-08", "03:00", "2026-03-08T07:00:00"),
        # New York autumn repeat: 01:00-01:59 happens twice on 2026-11-01; the first pass is EDT (UTC-4).
        (NEW_YORK, "2026-11-01", "00:59", "2026-11-01T04:59:00"),
        (NEW_YORK, "2026-11-01", "01:00", "2026-11-01T05:00:00"),
        (NEW_YORK, "2026-11-01", "01:30", "2026-11-01T05:30:00"),
        (NEW_YORK, "2026-11-01", "02:00", "2026-11-01T07:00:00"),
    ],
)
def test_local_instant_maps_gaps_to_their_end_and_repeats_to_their_first_pass(
    zone: ZoneInfo, day: str, wall: str, expected: str
) -> None:
    instant = local_instant(dt.date.fromisoformat(day), dt.time.fromisoformat(wall), zone)
    assert instant == utc(expected)
    assert instant.utcoffset() == dt.timedelta(0)


# --- daylight saving: windows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "days", "start_time", "end_time", "opens", "closes"),
    [
        # A 3-hour wall-clock window over the spring jump lasts 2 hours, over the autumn one 4 hours.
        ("Europe/Berlin", [SUNDAY], "01:00", "04:00", "2026-03-29T00:00:00", "2026-03-29T02:00:00"),
        ("Europe/Berlin", [SUNDAY], "01:00", "04:00", "2026-10-24T23:00:00", "2026-10-25T03:00:00"),
        ("America/New_York", [SUNDAY], "01:00", "04:00", "2026-03-08T06:00:00", "2026-03-08T08:00:00"),
        ("America/New_York", [SUNDAY], "00:00", "04:00", "2026-11-01T04:00:00", "2026-11-01T09:00:00"),
        # An overnight window from Saturday 22:00 to Sunday 06:00: 7 hours in spring, 9 in autumn.
        ("Europe/Berlin", [SATURDAY], "22:00", "06:00", "2026-03-28T21:00:00", "2026-03-29T04:00:00"),
        ("Europe/Berlin", [SATURDAY], "22:00", "06:00", "2026-10-24T20:00:00", "2026-10-25T05:00:00"),
        # Windows starting in a gap open at the gap's end; ending in a gap close at the gap's end.
        ("Europe/Berlin", [SUNDAY], "02:30", "05:00", "2026-03-29T01:00:00", "2026-03-29T03:00:00"),
        ("America/New_York", [SUNDAY], "02:30", "06:00", "2026-03-08T07:00:00", "2026-03-08T10:00:00"),
        ("America/New_York", [SUNDAY], "00:00", "02:30", "2026-03-08T05:00:00", "2026-03-08T07:00:00"),
        # Windows inside a repeated hour open and close on its first pass.
        ("Europe/Berlin", [SUNDAY], "02:15", "02:45", "2026-10-25T00:15:00", "2026-10-25T00:45:00"),
        ("America/New_York", [SUNDAY], "01:15", "01:45", "2026-11-01T05:15:00", "2026-11-01T05:45:00"),
        # Before and after the change, the same window has the usual offsets.
        ("Europe/Berlin", [SUNDAY], "01:00", "04:00", "2026-03-22T00:00:00", "2026-03-22T03:00:00"),
        ("Europe/Berlin", [SUNDAY], "01:00", "04:00", "2026-04-04T23:00:00", "2026-04-05T02:00:00"),
    ],
)
def test_a_window_spans_its_wall_clock_times_across_daylight_saving(
    zone: str, days: list[int], start_time: str, end_time: str, opens: str, closes: str
) -> None:
    spec = windows(zone, (days, start_time, end_time))
    start, end = interval_starting(spec, ZoneInfo(zone), utc(opens))
    assert (start, end) == (utc(opens), utc(closes))


@pytest.mark.parametrize(
    ("zone", "start_time", "end_time", "opens", "closes", "next_week_opens"),
    [
        (
            "Europe/Berlin",
            "01:00",
            "04:00",
            "2026-03-29T00:00:00",
            "2026-03-29T02:00:00",
            "2026-04-04T23:00:00",
        ),
        (
            "Europe/Berlin",
            "01:00",
            "04:00",
            "2026-10-24T23:00:00",
            "2026-10-25T03:00:00",
            "2026-11-01T00:00:00",
        ),
        (
            "Europe/Berlin",
            "02:30",
            "05:00",
            "2026-03-29T01:00:00",
            "2026-03-29T03:00:00",
            "2026-04-05T00:30:00",
        ),
        (
            "Europe/Berlin",
            "02:15",
            "02:45",
            "2026-10-25T00:15:00",
            "2026-10-25T00:45:00",
            "2026-11-01T01:15:00",
        ),
        (
            "America/New_York",
            "01:00",
            "04:00",
            "2026-03-08T06:00:00",
            "2026-03-08T08:00:00",
            "2026-03-15T05:00:00",
        ),
        (
            "America/New_York",
            "02:30",
            "06:00",
            "2026-03-08T07:00:00",
            "2026-03-08T10:00:00",
            "2026-03-15T06:30:00",
        ),
        (
            "America/New_York",
            "00:00",
            "04:00",
            "2026-11-01T04:00:00",
            "2026-11-01T09:00:00",
            "2026-11-08T05:00:00",
        ),
        (
            "America/New_York",
            "01:15",
            "01:45",
            "2026-11-01T05:15:00",
            "2026-11-01T05:45:00",
            "2026-11-08T06:15:00",
        ),
    ],
)
def test_decide_just_before_and_after_each_boundary_on_a_daylight_saving_sunday(
    zone: str, start_time: str, end_time: str, opens: str, closes: str, next_week_opens: str
) -> None:
    spec = windows(zone, ([SUNDAY], start_time, end_time))
    opening, closing = utc(opens), utc(closes)
    assert_outside(decide(spec, 2, Observed(), opening - SECOND), opening)
    assert_inside(decide(spec, 2, Observed(), opening), 2, closing)
    assert_inside(decide(spec, 2, Observed(), closing - SECOND), 2, closing)
    assert_outside(decide(spec, 2, Observed(), closing), utc(next_week_opens))


@pytest.mark.parametrize(
    ("zone", "start_time", "end_time", "second_pass"),
    [
        ("Europe/Berlin", "02:15", "02:45", "2026-10-25T01:20:00"),  # 02:20 CET, the second 02:20
        ("America/New_York", "01:15", "01:45", "2026-11-01T06:20:00"),  # 01:20 EST, the second 01:20
    ],
)
def test_a_window_in_a_repeated_hour_does_not_open_again_on_the_second_pass(
    zone: str, start_time: str, end_time: str, second_pass: str
) -> None:
    spec = windows(zone, ([SUNDAY], start_time, end_time))
    decision = decide(spec, 1, Observed(), utc(second_pass))
    assert (decision.replicas, decision.reason) == (0, lifecycle.OUTSIDE_WINDOW)
    assert decision.next_transition is not None
    assert decision.next_transition - utc(second_pass) > dt.timedelta(days=6)


def test_a_window_entirely_inside_a_gap_never_opens_that_day() -> None:
    spec = windows("Europe/Berlin", ([SUNDAY], "02:10", "02:50"))  # 2026-03-29 has no 02:xx
    decision = decide(spec, 1, Observed(), utc("2026-03-29T01:00:00"))
    assert_outside(decision, utc("2026-04-05T00:10:00"))
