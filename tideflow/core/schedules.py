"""Exactly-once schedules as pure functions of a Schedule and the instants they are handed.

Nothing here reads a clock or does I/O: every function takes ``now`` or explicit bounds, so the
operator can call :func:`due` on every reconcile and tests can drive any instant without sleeping.
All instants in and out are aware datetimes; results are in UTC.

How a schedule fires exactly once:

* :func:`fire_times` is a pure function of the schedule, so every operator (a restarted one, a new
  leader) computes the same fire times. :func:`run_name` turns ``(workflow, fire time)`` into the
  WorkflowRun's name, so a second create of the same fire time is a 409 AlreadyExists, never a
  second run.
* :func:`due` decides, from the last decided instant (``Due.checkpoint`` of the previous call), which
  fire times to create now and which to skip, and why (catch-up policy, window, ``maxRuns``).
* :func:`concurrency` applies ``concurrencyPolicy`` to one fire time given the runs still active.

Fire times by type:

* ``interval``: every ``value`` of elapsed time, anchored at the Unix epoch (1970-01-01T00:00:00Z):
  the fire times are the instants ``epoch + k * interval``. They do not depend on when the schedule or
  the operator started, nor on ``timezone`` or ``dstPolicy``. Shortest :data:`MIN_INTERVAL`, longest
  :data:`MAX_INTERVAL`.
* ``cron``: the five-field expression is matched by croniter against *local wall-clock* time in
  ``timezone`` (naive datetimes, so croniter's own DST handling never applies); each matching wall
  time is then placed on the UTC time line by ``dstPolicy``.
* ``daily``, ``weekly``, ``monthly``: ``time`` on every day, on each of ``daysOfWeek`` (0=Sunday),
  or on ``dayOfMonth`` (a month without that day is skipped, as in cron), in ``timezone``.

``dstPolicy`` decides where a wall-clock time lands when the UTC offset changes:

* a time that does not exist (spring gap): ``FireOnce`` and ``FireBoth`` fire once at the end of the
  gap (the first valid instant after it); ``SkipMissing`` does not fire;
* a time that occurs twice (autumn fold): ``FireOnce`` and ``SkipMissing`` fire at its first
  occurrence; ``FireBoth`` at both.

Several wall times landing on the same instant (e.g. ``*/15`` inside a gap) fire once.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import hashlib
import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Final, TypeVar
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from tideflow.core.models import (
    INTERVAL_PATTERN,
    TIME_OF_DAY_PATTERN,
    CatchupPolicy,
    ConcurrencyPolicy,
    DstPolicy,
    Schedule,
    ScheduleType,
    WorkflowState,
)

__all__ = [
    "INTERVAL_EPOCH",
    "MAX_INTERVAL",
    "MAX_LISTED_SKIPS",
    "MIN_INTERVAL",
    "ON_TIME_GRACE",
    "REASON_CATCHUP_NONE",
    "REASON_CONCURRENCY_FORBID",
    "REASON_MAX_RUNS",
    "REASON_OUTSIDE_WINDOW",
    "REASON_SUPERSEDED",
    "Activity",
    "Decision",
    "Due",
    "Expired",
    "ScheduleError",
    "Skip",
    "activity",
    "check",
    "concurrency",
    "due",
    "fire_times",
    "interval_of",
    "issues",
    "next_fire_time",
    "preview",
    "run_name",
    "wake_at",
]

_T = TypeVar("_T")
UTC: Final = dt.UTC
MIN_INTERVAL: Final = dt.timedelta(seconds=10)
"""Shortest interval schedule. Every fire time is a WorkflowRun object written to the API server and
watched by the runtime: at 10 s that is already 8,640 objects a day per workflow before pruning, and a
shorter period would approach the operator's own reconcile latency."""
MAX_INTERVAL: Final = dt.timedelta(days=365)
"""Longest interval schedule; longer periods are cron or monthly schedules."""
INTERVAL_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=UTC)
"""Anchor of interval schedules: they fire at ``INTERVAL_EPOCH + k * interval`` for whole ``k``."""
ON_TIME_GRACE: Final = dt.timedelta(seconds=60)
"""With ``catchup.policy: none``, the newest fire time still fires when at most this late; older ones
are missed. Under ``latest`` and ``all`` the catch-up window is never shorter than this either."""
MAX_LISTED_SKIPS: Final = 100
"""``Due.skipped`` lists at most this many skipped fire times (the newest); ``Due.skipped_count`` counts
all of them."""

# Reasons a fire time is skipped (CamelCase, like Kubernetes Event reasons).
REASON_CATCHUP_NONE: Final = "CatchupPolicyNone"
REASON_SUPERSEDED: Final = "SupersededByLatest"
REASON_MAX_RUNS: Final = "CatchupMaxRunsExceeded"
REASON_OUTSIDE_WINDOW: Final = "OutsideCatchupWindow"
REASON_CONCURRENCY_FORBID: Final = "ConcurrencyForbid"

_UNITS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_CRON_CHECK_FROM: Final = dt.datetime(2000, 1, 1)  # any fixed instant: check() must not read a clock
_LAST_YEAR: Final = 9998  # stop generating before datetime's year 9999 limit
_RUN_NAME_INFIX: Final = "-s-"
_RUN_NAME_MAX: Final = 253
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ONE_SECOND: Final = dt.timedelta(seconds=1)
_ONE_HOUR: Final = dt.timedelta(hours=1)
_ONE_MINUTE: Final = dt.timedelta(minutes=1)


class ScheduleError(ValueError):
    """A schedule that :func:`check` rejects was used to compute fire times."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Skip:
    """A fire time that will not run, and why (the operator records an Event and a metric)."""

    scheduled_time: dt.datetime
    reason: str
    message: str


@dataclass(frozen=True)
class Expired:
    """The fire times from ``first`` (inclusive) up to ``before`` (exclusive; both UTC) are older than the
    catch-up window: skipped with reason :data:`REASON_OUTSIDE_WINDOW`, and not listed one by one (an
    outage of months would otherwise list every minute)."""

    first: dt.datetime
    before: dt.datetime
    reason: str = REASON_OUTSIDE_WINDOW


@dataclass(frozen=True)
class Due:
    """What :func:`due` decided for the fire times in ``(max(last_fired, started_at), now]``."""

    checkpoint: dt.datetime
    """Every fire time up to this instant is decided: pass it as ``last_fired`` next time."""
    fire: list[dt.datetime] = field(default_factory=list)
    """Fire times to create runs for now, oldest first (name each with :func:`run_name`)."""
    skipped: list[Skip] = field(default_factory=list)
    """The newest :data:`MAX_LISTED_SKIPS` skipped fire times inside the window, oldest first."""
    skipped_count: int = 0
    """How many fire times inside the window were skipped (``len(skipped)`` or more)."""
    expired: Expired | None = None
    """Fire times older than the window, if there were any."""
    next: dt.datetime | None = None
    """The next fire time after ``now`` (and after the baseline); ``None`` if the schedule never fires."""


@dataclass(frozen=True)
class Decision:
    """What :func:`concurrency` decided for one due fire time."""

    create: bool
    cancel: list[str] = field(default_factory=list)
    skip_reason: str | None = None
    message: str = ""


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    kind: ScheduleType
    zone: ZoneInfo
    dst: DstPolicy
    every: dt.timedelta | None = None
    cron: str | None = None
    at: dt.time | None = None
    days: frozenset[int] | None = None
    day_of_month: int | None = None


def interval_of(value: str) -> dt.timedelta:
    """The period an interval ``value`` names (``'5 minutes'`` -> 300 s); ``ValueError`` if malformed."""
    if re.fullmatch(INTERVAL_PATTERN, value) is None:
        raise ValueError(
            f"{value!r} is not an interval: write a positive whole number and a unit (second, minute, "
            "hour or day, singular or plural), like '30 seconds', '5 minutes' or '1 hour'"
        )
    count, unit = value.split(" ")
    try:
        return dt.timedelta(seconds=int(count) * _UNITS[unit.removesuffix("s")])
    except OverflowError:
        raise ValueError(
            f"{value!r} is longer than the maximum interval of {MAX_INTERVAL.days} days; "
            "use a cron or monthly schedule"
        ) from None


def _zone(name: object) -> tuple[ZoneInfo | None, str | None]:
    if not isinstance(name, str) or not name:
        return None, "timezone: must be an IANA time zone name such as UTC or Europe/Berlin"
    try:
        return ZoneInfo(name), None
    except Exception:  # ZoneInfoNotFoundError, ValueError for malformed keys, OSError for directories
        return None, (
            f"timezone: {name!r} is not a time zone the IANA time zone database knows "
            "(use a name such as UTC, Europe/Berlin or America/New_York)"
        )


def _cron_problem(value: str) -> str | None:
    text = value.strip()
    if text.startswith("@"):
        return (
            f"value: {value!r}: cron macros such as @daily are not supported; write the five fields, "
            "like '0 0 * * *'"
        )
    fields = text.split()
    if len(fields) != 5:
        return (
            f"value: {value!r} has {len(fields)} field(s); a cron expression has exactly five: minute hour "
            "day-of-month month day-of-week, like '0 2 * * 1-5'"
        )
    for item in (part.strip().upper() for f in fields for part in f.split(",")):
        if item in ("R", "H") or item.startswith(("R(", "H(", "R/", "H/")):
            return (
                f"value: {value!r}: random (R) and hashed (H) cron values are not supported: every "
                "operator replica must compute the same fire times"
            )
    try:
        croniter(" ".join(fields), _CRON_CHECK_FROM).get_next(dt.datetime)
    except CroniterBadDateError:
        return f"value: {value!r} never matches a date (for example the 30th of February), so it never fires"
    except Exception as exc:  # croniter's parse errors are several classes (and some ValueErrors)
        return f"value: {value!r} is not a valid cron expression: {exc}"
    return None


def _compile(schedule: Schedule) -> tuple[_Compiled | None, list[str]]:
    """The schedule ready for computing, or the problems that prevent it."""
    problems: list[str] = []
    try:
        kind = ScheduleType(schedule.type)
    except ValueError:
        return None, [f"type: {schedule.type!r} is not one of manual, interval, cron, daily, weekly, monthly"]
    zone, zone_problem = _zone(schedule.timezone)
    if zone_problem:
        problems.append(zone_problem)
    try:
        dst = DstPolicy(schedule.dst_policy)
    except ValueError:
        problems.append(f"dstPolicy: {schedule.dst_policy!r} is not one of FireOnce, FireBoth, SkipMissing")
        dst = DstPolicy.FIRE_ONCE
    compiled: dict[str, object] = {}
    value = schedule.value
    if kind is ScheduleType.INTERVAL:
        if not value:
            problems.append("value: an interval schedule needs a value such as '5 minutes'")
        else:
            try:
                every = interval_of(value)
            except ValueError as exc:
                problems.append(f"value: {exc}")
            else:
                if every < MIN_INTERVAL:
                    problems.append(
                        f"value: {value!r} is shorter than the minimum interval of "
                        f"{int(MIN_INTERVAL.total_seconds())} seconds"
                    )
                elif every > MAX_INTERVAL:
                    problems.append(
                        f"value: {value!r} is longer than the maximum interval of {MAX_INTERVAL.days} days; "
                        "use a cron or monthly schedule"
                    )
                else:
                    compiled["every"] = every
    elif kind is ScheduleType.CRON:
        if not value:
            problems.append("value: a cron schedule needs a five-field expression such as '0 2 * * 1-5'")
        else:
            problem = _cron_problem(value)
            if problem:
                problems.append(problem)
            else:
                compiled["cron"] = " ".join(value.split())
    elif kind in (ScheduleType.DAILY, ScheduleType.WEEKLY, ScheduleType.MONTHLY):
        if not schedule.time:
            problems.append(f"time: a {kind.value} schedule needs a time of day, HH:MM")
        elif re.fullmatch(TIME_OF_DAY_PATTERN, schedule.time) is None:
            problems.append(f"time: {schedule.time!r} is not a time of day HH:MM (00:00 .. 23:59)")
        else:
            hours, minutes = schedule.time.split(":")
            compiled["at"] = dt.time(int(hours), int(minutes))
        if kind is ScheduleType.WEEKLY:
            days = schedule.days_of_week or []
            if not days:
                problems.append(
                    "daysOfWeek: a weekly schedule needs at least one day (0=Sunday .. 6=Saturday)"
                )
            elif any(not isinstance(d, int) or not 0 <= d <= 6 for d in days):
                problems.append(f"daysOfWeek: {days!r}: each day is 0 (Sunday) .. 6 (Saturday)")
            elif len(set(days)) != len(days):
                problems.append(f"daysOfWeek: {days!r} lists a day more than once")
            else:
                compiled["days"] = frozenset(days)
        if kind is ScheduleType.MONTHLY:
            day = schedule.day_of_month
            if day is None:
                problems.append("dayOfMonth: a monthly schedule needs a day of the month, 1..31")
            elif not isinstance(day, int) or not 1 <= day <= 31:
                problems.append(f"dayOfMonth: {day!r} is not a day of the month, 1..31")
            else:
                compiled["day_of_month"] = day
    if problems or zone is None:
        return None, problems
    return (
        _Compiled(
            kind=kind,
            zone=zone,
            dst=dst,
            every=_typed(compiled.get("every"), dt.timedelta),
            cron=_typed(compiled.get("cron"), str),
            at=_typed(compiled.get("at"), dt.time),
            days=_typed(compiled.get("days"), frozenset),
            day_of_month=_typed(compiled.get("day_of_month"), int),
        ),
        [],
    )


def _typed(value: object, kind: type[_T]) -> _T | None:
    return value if isinstance(value, kind) else None


def issues(schedule: Schedule) -> list[tuple[str, str]]:
    """The schedule's problems as ``(field, message)``; the field is camelCase under ``spec.schedule``."""
    out: list[tuple[str, str]] = []
    for problem in check(schedule):
        name, _, message = problem.partition(": ")
        out.append((name, message))
    return out


def check(schedule: Schedule) -> list[str]:
    """Every problem that keeps the schedule from firing, as ``"<field>: <message>"``; never raises.

    Checks what the CRD schema cannot: the time zone is in the time-zone database, the cron expression
    parses with exactly five fields and ever matches a date, the interval is between
    :data:`MIN_INTERVAL` and :data:`MAX_INTERVAL`, and the fields the type needs are present.
    An empty list means :func:`fire_times` and friends accept the schedule.
    """
    try:
        return _compile(schedule)[1]
    except Exception as exc:  # a model built without validation can hold anything
        return [f"schedule: cannot be checked: {exc}"]


@dataclass(frozen=True)
class Activity:
    """Whether a workflow's schedule fires, and why (the ``Scheduled`` condition's status and reason)."""

    active: bool
    reason: str  # Active | Manual | Invalid | NotActive | NotDeployed
    message: str


def activity(schedule: Schedule | None, *, state: str, deployed: bool, valid: bool = True) -> Activity:
    """Whether ``schedule`` fires for a workflow in ``state`` (``spec.state``), deployed or not.

    It fires when its type is not ``manual``, :func:`check` finds nothing, the workflow's definition
    is ``valid``, the workflow is ``Active`` and it is deployed. The first of these that fails is the
    reason. Used by the operator for the ``Scheduled`` condition and by ``tideflow validate``.
    """
    if schedule is None or schedule.type is ScheduleType.MANUAL:
        return Activity(False, "Manual", "No schedule: runs start by trigger only.")
    problems = check(schedule)
    if problems or not valid:
        text = "; ".join(problems) if problems else "the definition is invalid (see status.errors)"
        return Activity(False, "Invalid", f"The schedule cannot run: {text}")
    if state != WorkflowState.ACTIVE.value:
        return Activity(False, "NotActive", "The schedule is paused: the workflow is not Active.")
    if not deployed:
        return Activity(False, "NotDeployed", "The schedule is paused: the workflow is not deployed.")
    return Activity(True, "Active", "The schedule fires.")


def _compiled(schedule: Schedule) -> _Compiled | None:
    """``None`` for a manual schedule; raises :class:`ScheduleError` if :func:`check` finds problems."""
    compiled, problems = _compile(schedule)
    if problems or compiled is None:
        raise ScheduleError(problems or ["schedule: invalid"])
    return None if compiled.kind is ScheduleType.MANUAL else compiled


# --------------------------------------------------------------------------------------------
# Fire times
# --------------------------------------------------------------------------------------------


def _utc(moment: dt.datetime, name: str) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def _resolve(wall: dt.datetime, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime | None, bool]:
    """Place a naive wall-clock time on the UTC time line.

    Returns ``(first, second, exists)``: a wall time that exists once gives ``(t, None, True)``; one that
    occurs twice gives both occurrences; one in a gap gives ``(end of the gap, None, False)``.
    """
    early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if early == late:
        return early, None, True
    low, high = min(early, late), max(early, late)
    if low.astimezone(zone).replace(tzinfo=None) == wall:
        return low, high, True  # an autumn fold: both readings are real instants
    # In a gap: the two readings straddle the transition (the offset at ``low`` is the old one, at
    # ``high`` the new one). The transition instant is the first valid instant after the gap.
    before = low.astimezone(zone).utcoffset()
    while high - low > _ONE_SECOND:
        middle = low + (high - low) // 2
        middle -= dt.timedelta(microseconds=middle.microsecond)
        if middle <= low:
            break
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high, None, False


def _instants(wall: dt.datetime, compiled: _Compiled) -> tuple[dt.datetime, list[dt.datetime]]:
    """``(bound, fire instants)`` of one wall time by the DST policy; ``bound`` is the earliest instant
    it could fire at, and never decreases as ``wall`` grows (what the merge in :func:`_walls_to_utc`
    relies on)."""
    first, second, exists = _resolve(wall, compiled.zone)
    if not exists:
        return first, [] if compiled.dst is DstPolicy.SKIP_MISSING else [first]
    if second is not None and compiled.dst is DstPolicy.FIRE_BOTH:
        return first, [first, second]
    return first, [first]


def _start_wall(after: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """A wall time from which on every wall time that could fire after ``after`` is generated."""
    wall = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    for _ in range(48):
        first, second, _exists = _resolve(wall, zone)
        if (second or first) <= after:
            return wall
        wall -= _ONE_HOUR
    return wall


def _cron_walls(expression: str, start: dt.datetime) -> Iterator[dt.datetime]:
    """The wall times a five-field expression matches, ascending, from ``start``'s day on.

    The minute and hour fields do not depend on the date, so croniter is asked for the matching *days*
    only (with the expression's own day-of-month, month and day-of-week fields, so the semantics of
    ``L``, ``W``, ``#`` and cron's either-day rule are croniter's), and each such day gives every
    hour and minute of the expression: one croniter step per day instead of one per fire time.
    """
    fields = expression.split()
    parsed = croniter(expression, _CRON_CHECK_FROM)  # a start time, so croniter does not read the clock
    minutes = _expanded(parsed.expanded[0], 60)
    hours = _expanded(parsed.expanded[1], 24)
    times = [dt.time(hour, minute) for hour in hours for minute in minutes]
    days = croniter(
        " ".join(["0", "0", *fields[2:]]), dt.datetime.combine(start.date(), dt.time()) - _ONE_MINUTE
    )
    while True:
        try:
            midnight: dt.datetime = days.get_next(dt.datetime)
        except (CroniterBadDateError, OverflowError, ValueError):  # ValueError: past the year 9999
            return
        if midnight.year > _LAST_YEAR:
            return
        day = midnight.date()
        first = bisect.bisect_left(times, start.time()) if day == start.date() else 0
        for at in times[first:]:
            yield dt.datetime.combine(day, at)


def _expanded(values: list[object], size: int) -> list[int]:
    if "*" in values:
        return list(range(size))
    return sorted({int(str(value)) for value in values})


def _day_walls(start: dt.datetime, at: dt.time, days: frozenset[int] | None) -> Iterator[dt.datetime]:
    day = start.date()
    while day.year <= _LAST_YEAR:
        if days is None or day.isoweekday() % 7 in days:  # isoweekday: Monday=1 .. Sunday=7 -> 0
            yield dt.datetime.combine(day, at)
        day += dt.timedelta(days=1)


def _month_walls(start: dt.datetime, at: dt.time, day_of_month: int) -> Iterator[dt.datetime]:
    year, month = start.year, start.month
    while year <= _LAST_YEAR:
        if day_of_month <= calendar.monthrange(year, month)[1]:
            yield dt.datetime.combine(dt.date(year, month, day_of_month), at)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _walls(compiled: _Compiled, start: dt.datetime) -> Iterator[dt.datetime]:
    if compiled.cron is not None:
        return _cron_walls(compiled.cron, start)
    assert compiled.at is not None  # _compile guarantees it for daily, weekly and monthly
    if compiled.kind is ScheduleType.MONTHLY:
        assert compiled.day_of_month is not None
        return _month_walls(start, compiled.at, compiled.day_of_month)
    return _day_walls(start, compiled.at, compiled.days if compiled.kind is ScheduleType.WEEKLY else None)


def _walls_to_utc(compiled: _Compiled, after: dt.datetime) -> Iterator[dt.datetime]:
    """Fire instants after ``after``, ascending and distinct, of a wall-clock schedule.

    Wall times are generated in order; their instants are not (a repeated hour's second occurrence
    comes after later wall times' first ones), so they wait in a heap until the next wall time's
    earliest possible instant shows that nothing earlier can still come.
    """
    heap: list[dt.datetime] = []
    last = after
    for wall in _walls(compiled, _start_wall(after, compiled.zone)):
        bound, instants = _instants(wall, compiled)
        while heap and heap[0] <= bound:
            moment = heapq.heappop(heap)
            if moment > last:
                last = moment
                yield moment
        for moment in instants:
            heapq.heappush(heap, moment)
    while heap:
        moment = heapq.heappop(heap)
        if moment > last:
            last = moment
            yield moment


def _interval_times(every: dt.timedelta, after: dt.datetime) -> Iterator[dt.datetime]:
    try:
        moment = INTERVAL_EPOCH + ((after - INTERVAL_EPOCH) // every + 1) * every
        while True:
            yield moment
            moment += every
    except OverflowError:
        return


def _iter_fire_times(schedule: Schedule, after: dt.datetime) -> Iterator[dt.datetime]:
    compiled = _compiled(schedule)
    after = _utc(after, "after")
    if compiled is None:
        return iter(())
    if compiled.every is not None:
        return _interval_times(compiled.every, after)
    return _walls_to_utc(compiled, after)


def fire_times(schedule: Schedule, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """The fire times in ``(after, until]``, in UTC, ascending and distinct.

    Raises :class:`ScheduleError` for a schedule :func:`check` rejects, ``ValueError`` for naive bounds.
    ``fire_times(s, a, c) == fire_times(s, a, b) + fire_times(s, b, c)`` for any ``a <= b <= c``.
    """
    until = _utc(until, "until")
    out: list[dt.datetime] = []
    for moment in _iter_fire_times(schedule, after):
        if moment > until:
            break
        out.append(moment)
    return out


def next_fire_time(schedule: Schedule, after: dt.datetime) -> dt.datetime | None:
    """The first fire time strictly after ``after`` (UTC), or ``None`` if there is none (manual)."""
    return next(_iter_fire_times(schedule, after), None)


def preview(schedule: Schedule, after: dt.datetime, n: int) -> list[dt.datetime]:
    """The next ``n`` fire times after ``after`` (fewer if the schedule stops), for a validate call."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return list(islice(_iter_fire_times(schedule, after), n))


# --------------------------------------------------------------------------------------------
# What to fire now
# --------------------------------------------------------------------------------------------


def _late(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    text = "".join(parts) + (f"{secs}s" if secs or not any(parts) else "")
    return text


def due(
    schedule: Schedule,
    last_fired: dt.datetime | None,
    now: dt.datetime,
    started_at: dt.datetime,
) -> Due:
    """Which fire times in ``(baseline, now]`` to create runs for now, and which to skip.

    ``baseline`` is the later of ``last_fired`` (the previous call's ``Due.checkpoint``: every fire time
    up to it is already decided) and ``started_at`` (when the schedule took effect: the workflow became
    Active, or its schedule changed; fire times before it are never fired). Catch-up:

    * ``none``: only the newest fire time, and only if it is at most :data:`ON_TIME_GRACE` late;
    * ``latest``: the newest fire time no older than ``windowSeconds``;
    * ``all``: every fire time no older than ``windowSeconds``, at most ``maxRuns`` (the newest).

    Every other fire time no older than ``windowSeconds`` is a :class:`Skip`; older ones are summarized
    in ``Due.expired``. Raises :class:`ScheduleError` for a schedule :func:`check` rejects.
    """
    now = _utc(now, "now")
    baseline = _utc(started_at, "started_at")
    if last_fired is not None:
        baseline = max(baseline, _utc(last_fired, "last_fired"))
    checkpoint = max(baseline, now)
    upcoming = next_fire_time(schedule, checkpoint)
    if now <= baseline:
        return Due(next=upcoming, checkpoint=checkpoint)

    catchup = schedule.catchup
    policy = CatchupPolicy(catchup.policy)
    window = dt.timedelta(seconds=catchup.window_seconds)
    if policy is not CatchupPolicy.NONE:
        window = max(window, ON_TIME_GRACE)
    horizon = now - window  # fire times at or after it are inside the window
    expired: Expired | None = None
    examined_after = baseline
    if baseline < horizon:
        oldest = next_fire_time(schedule, baseline)
        if oldest is not None and oldest < horizon:
            expired = Expired(first=oldest, before=horizon)
        examined_after = horizon - dt.timedelta(microseconds=1)  # so a fire time at the horizon is in
    candidates = fire_times(schedule, examined_after, now)

    if policy is CatchupPolicy.NONE:
        on_time = bool(candidates) and now - candidates[-1] <= ON_TIME_GRACE
        fire = candidates[-1:] if on_time else []
        reason = REASON_CATCHUP_NONE
    elif policy is CatchupPolicy.LATEST:
        fire = candidates[-1:]
        reason = REASON_SUPERSEDED
    else:
        fire = candidates[-max(1, catchup.max_runs) :]
        reason = REASON_MAX_RUNS
    missed = len(candidates) - len(fire)  # the skipped ones are the oldest candidates
    listed = candidates[max(0, missed - MAX_LISTED_SKIPS) : missed]
    return Due(
        fire=fire,
        skipped=[
            Skip(moment, reason, _skip_message(reason, moment, now, fire, catchup.max_runs))
            for moment in listed
        ],
        skipped_count=missed,
        expired=expired,
        next=upcoming,
        checkpoint=checkpoint,
    )


def _skip_message(
    reason: str, moment: dt.datetime, now: dt.datetime, fire: list[dt.datetime], max_runs: int
) -> str:
    if reason == REASON_CATCHUP_NONE:
        return (
            f"missed by {_late((now - moment).total_seconds())}; catch-up policy none runs only the newest "
            f"fire time, at most {int(ON_TIME_GRACE.total_seconds())}s late"
        )
    if reason == REASON_SUPERSEDED:
        return f"catch-up policy latest runs only the newest missed fire time, {_iso(fire[-1])}"
    return f"catch-up policy all runs at most maxRuns={max_runs} missed fire times, the newest"


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# Names, overlap, wake-up
# --------------------------------------------------------------------------------------------


def run_name(workflow_name: str, scheduled_time: dt.datetime) -> str:
    """The WorkflowRun name of a fire time: ``<workflow>-s-<YYYYMMDDHHMMSS>`` (UTC).

    Deterministic, so two operators creating the same fire time create the same name and the API server
    refuses the second with 409 AlreadyExists. Always a valid DNS subdomain of at most 253 characters: a
    workflow name too long for the suffix is cut and followed by a hash of the whole name.
    Fire times are whole seconds; a time with a fraction of a second is a ``ValueError``.
    """
    if _DNS_SUBDOMAIN.fullmatch(workflow_name) is None or len(workflow_name) > _RUN_NAME_MAX:
        raise ValueError(f"{workflow_name!r} is not a Kubernetes object name (a DNS subdomain)")
    moment = _utc(scheduled_time, "scheduled_time")
    if moment.microsecond:
        raise ValueError(f"scheduled_time {moment.isoformat()} is not a whole second, so not a fire time")
    suffix = (
        f"{_RUN_NAME_INFIX}{moment.year:04d}{moment.month:02d}{moment.day:02d}"
        f"{moment.hour:02d}{moment.minute:02d}{moment.second:02d}"
    )
    prefix = workflow_name
    if len(prefix) + len(suffix) > _RUN_NAME_MAX:
        digest = "-" + hashlib.sha256(workflow_name.encode()).hexdigest()[:10]
        prefix = workflow_name[: _RUN_NAME_MAX - len(suffix) - len(digest)].rstrip("-.") + digest
    return prefix + suffix


def concurrency(policy: ConcurrencyPolicy | str, running_runs: list[str]) -> Decision:
    """Apply ``concurrencyPolicy`` to one due fire time.

    ``running_runs`` are the names of the workflow's scheduled runs still Pending or Running (including
    ones created earlier in the same reconcile). ``Allow`` creates; ``Forbid`` skips while any runs,
    with :data:`REASON_CONCURRENCY_FORBID`; ``Replace`` creates and cancels all of them.
    """
    chosen = ConcurrencyPolicy(policy)
    active = sorted(set(running_runs))
    if chosen is ConcurrencyPolicy.FORBID and active:
        shown = ", ".join(active[:3]) + (f" and {len(active) - 3} more" if len(active) > 3 else "")
        return Decision(
            create=False,
            skip_reason=REASON_CONCURRENCY_FORBID,
            message=f"concurrencyPolicy Forbid: {shown} still running",
        )
    if chosen is ConcurrencyPolicy.REPLACE and active:
        return Decision(
            create=True, cancel=active, message=f"concurrencyPolicy Replace: cancelling {len(active)} run(s)"
        )
    return Decision(create=True)


def wake_at(next_fire: dt.datetime, lead: dt.timedelta) -> dt.datetime:
    """When to start a scaled-to-zero runtime so it is ready by ``next_fire``: ``lead`` earlier (UTC)."""
    if lead < dt.timedelta(0):
        raise ValueError(f"lead must not be negative, got {lead}")
    return _utc(next_fire, "next_fire") - lead
