"""Lifecycle policies as a pure function: how many runtime replicas a workflow should have, and why.

:func:`decide` looks only at its arguments (the spec, what was observed, and ``now``), so every
policy is tested by handing it times, without a cluster and without sleeping. The operator calls it
on every reconcile and publishes ``next_transition`` so users see when the runtime will start or
stop on its own.

Policies (an explicit stop, ``spec.replicas: 0``, wins over all of them until an explicit start):

* ``always-on``: ``spec.replicas`` while deployed.
* ``idle-shutdown``: ``spec.replicas`` until ``idleTimeoutMinutes`` have passed since the last
  activity (or since the workflow was started, when nothing ran yet); never while a run is in
  progress; a Pending run wakes it.
* ``on-demand``: zero unless a run is Pending or Running, or the last activity is more recent than
  the idle timeout (``idleTimeoutMinutes``, 5 minutes when unset): the runtime then stops once idle.
* ``scheduled-window``: ``spec.replicas`` inside one of the weekly windows, in the windows' IANA
  time zone, else zero. A window whose end is before its start crosses midnight. A boundary that
  falls in a daylight-saving gap (a wall-clock time that does not exist) takes effect at the end
  of the gap; one that falls in a repeated hour takes effect at its first occurrence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tideflow.core.models import Lifecycle, LifecycleSchedule, LifecycleType

DEFAULT_ON_DEMAND_IDLE = dt.timedelta(minutes=5)

# Reasons (CamelCase, as Kubernetes condition reasons are).
STOPPED_BY_USER = "StoppedByUser"
ALWAYS_ON = "AlwaysOn"
ACTIVE = "Active"
IDLE_TIMEOUT = "IdleTimeout"
RUN_WAITING = "RunWaiting"
RUN_IN_PROGRESS = "RunInProgress"
NO_DEMAND = "NoDemand"
INSIDE_WINDOW = "InsideWindow"
OUTSIDE_WINDOW = "OutsideWindow"
BAD_TIME_ZONE = "UnknownTimeZone"


@dataclass(frozen=True)
class Observed:
    """What the policy needs to know besides the spec."""

    last_activity_at: dt.datetime | None = None
    started_at: dt.datetime | None = None  # when the runtime was last started (activity baseline)
    pending_runs: int = 0
    running_runs: int = 0


@dataclass(frozen=True)
class Decision:
    """The outcome: desired replicas, the reason, and when the policy would change its mind."""

    replicas: int
    reason: str
    message: str
    next_transition: dt.datetime | None = None

    @property
    def stopped(self) -> bool:
        return self.replicas == 0


def decide(lifecycle: Lifecycle, replicas: int, observed: Observed, now: dt.datetime) -> Decision:
    """The desired replica count for a deployed workflow at ``now``."""
    if replicas == 0:
        return Decision(0, STOPPED_BY_USER, "Stopped by the user (spec.replicas is 0) until started again.")
    kind = lifecycle.type
    if kind == LifecycleType.ALWAYS_ON:
        return Decision(replicas, ALWAYS_ON, "The always-on policy keeps the runtime running.")
    if kind == LifecycleType.SCHEDULED_WINDOW:
        return _scheduled_window(lifecycle.schedule or LifecycleSchedule(), replicas, now)
    busy = _busy(replicas, observed)
    if kind == LifecycleType.IDLE_SHUTDOWN:
        timeout = dt.timedelta(minutes=lifecycle.idle_timeout_minutes or 30)
        if busy is not None:
            return busy
        baseline = _latest(observed.last_activity_at, observed.started_at)
        if baseline is not None and now < baseline + timeout:
            return Decision(
                replicas,
                ACTIVE,
                f"Active; stops after {_minutes(timeout)} without activity.",
                baseline + timeout,
            )
        return Decision(
            0,
            IDLE_TIMEOUT,
            f"Stopped after {_minutes(timeout)} without activity; a run or trigger starts it again.",
        )
    timeout = (
        dt.timedelta(minutes=lifecycle.idle_timeout_minutes)
        if lifecycle.idle_timeout_minutes
        else DEFAULT_ON_DEMAND_IDLE
    )
    if busy is not None:
        return busy
    if observed.last_activity_at is not None and now < observed.last_activity_at + timeout:
        return Decision(
            replicas,
            ACTIVE,
            f"Recently active; stops after {_minutes(timeout)} without activity.",
            observed.last_activity_at + timeout,
        )
    return Decision(0, NO_DEMAND, "On demand: stopped while no run waits or executes.")


def _busy(replicas: int, observed: Observed) -> Decision | None:
    if observed.running_runs:
        return Decision(replicas, RUN_IN_PROGRESS, f"{observed.running_runs} run(s) in progress.")
    if observed.pending_runs:
        return Decision(replicas, RUN_WAITING, f"{observed.pending_runs} run(s) waiting for the runtime.")
    return None


def _latest(*moments: dt.datetime | None) -> dt.datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def _minutes(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


# --- scheduled windows ---------------------------------------------------------------------------------


def _scheduled_window(schedule: LifecycleSchedule, replicas: int, now: dt.datetime) -> Decision:
    try:
        zone = ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return Decision(
            0, BAD_TIME_ZONE, f"Unknown time zone {schedule.timezone!r}: the runtime stays stopped."
        )
    intervals = window_intervals(schedule, zone, now)
    for start, end in intervals:
        if start <= now < end:
            closes = _merged_end(intervals, end)
            if closes >= max(last for _, last in intervals):  # windows cover the horizon: never closes
                return Decision(replicas, INSIDE_WINDOW, "Inside the windows, which cover the whole week.")
            return Decision(replicas, INSIDE_WINDOW, f"Inside a window until {closes.isoformat()}.", closes)
    upcoming = [start for start, _ in intervals if start > now]
    opens = min(upcoming) if upcoming else None
    text = f"Outside the windows; the next opens at {opens.isoformat()}." if opens else "No window ahead."
    return Decision(0, OUTSIDE_WINDOW, text, opens)


def _merged_end(intervals: list[tuple[dt.datetime, dt.datetime]], end: dt.datetime) -> dt.datetime:
    """Where the running stretch really ends when windows touch or overlap (Mon 22-02 + Tue 02-06)."""
    extended = True
    while extended:
        extended = False
        for start, other_end in intervals:
            if start <= end < other_end:
                end = other_end
                extended = True
    return end


def window_intervals(
    schedule: LifecycleSchedule, zone: ZoneInfo, now: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Every window occurrence that starts between 8 days before and 8 days after ``now``, in UTC."""
    today = now.astimezone(zone).date()
    intervals: list[tuple[dt.datetime, dt.datetime]] = []
    for offset in range(-8, 9):
        day = today + dt.timedelta(days=offset)
        weekday = (day.weekday() + 1) % 7  # Python: Monday=0; Tideflow: Sunday=0
        for window in schedule.windows:
            if weekday not in window.days:
                continue
            start_time = _parse_time(window.start_time)
            end_time = _parse_time(window.end_time)
            end_day = day + dt.timedelta(days=1) if end_time <= start_time else day
            intervals.append((local_instant(day, start_time, zone), local_instant(end_day, end_time, zone)))
    return sorted(intervals)


def _parse_time(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))


def local_instant(day: dt.date, wall: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant a wall-clock time names: a gap maps to its end, a repeated hour to its first pass."""
    candidate = dt.datetime.combine(day, wall, tzinfo=zone)
    instant = candidate.astimezone(dt.UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == candidate.replace(tzinfo=None):
        return instant  # exists (fold=0 picks the first of two occurrences)
    # In a gap. With fold=0 the wall time was read with the offset from before the jump, which puts
    # ``instant`` after the jump; walk back to the minute the offset changed: the end of the gap.
    after = instant.astimezone(zone).utcoffset()
    probe = instant
    for _ in range(24 * 60):
        earlier = probe - dt.timedelta(minutes=1)
        if earlier.astimezone(zone).utcoffset() != after:
            return probe
        probe = earlier
    return instant
