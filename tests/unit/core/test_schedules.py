"""Unit tests of exactly-once schedules (:mod:`tideflow.core.schedules`), driven by given instants.

Nothing sleeps or reads the clock: each test hands the functions a schedule and instants and checks the
fire times, catch-up decisions, names and overlap decisions a user would see.

Daylight saving in 2026 (checked against the time-zone database in the tests that use them):

* Europe/Berlin: 02:00 -> 03:00 on Sunday 29 March (at 01:00Z); 03:00 -> 02:00 on Sunday 25 October
  (at 01:00Z), so 02:00-02:59 happens twice, first at CEST (+02:00) then at CET (+01:00).
* America/New_York: 02:00 -> 03:00 on Sunday 8 March (at 07:00Z); 02:00 -> 01:00 on Sunday
  1 November (at 06:00Z), so 01:00-01:59 happens twice (EDT -04:00, then EST -05:00).
* Australia/Lord_Howe shifts by 30 minutes: 02:00 -> 01:30 on Sunday 5 April (at 15:00Z on the 4th;
  +11:00 -> +10:30) and 02:00 -> 02:30 on Sunday 4 October (at 15:30Z on the 3rd; +10:30 -> +11:00).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import CroniterBadDateError, croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tideflow.core import schedules
from tideflow.core.models import Schedule
from tideflow.core.schedules import (
    INTERVAL_EPOCH,
    MAX_LISTED_SKIPS,
    MIN_INTERVAL,
    ON_TIME_GRACE,
    REASON_CATCHUP_NONE,
    REASON_CONCURRENCY_FORBID,
    REASON_MAX_RUNS,
    REASON_SUPERSEDED,
    Due,
    ScheduleError,
    check,
    concurrency,
    due,
    fire_times,
    next_fire_time,
    preview,
    run_name,
    wake_at,
)

SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KOLKATA = ZoneInfo("Asia/Kolkata")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def utc(text: str) -> dt.datetime:
    """An aware UTC instant from ``2026-01-02T22:00:00`` (the ``Z`` is implied)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def iso(moments: list[dt.datetime]) -> list[str]:
    return [m.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ") for m in moments]


def sched(kind: str, **fields: Any) -> Schedule:
    return Schedule.model_validate({"type": kind, **fields})


def unchecked(**fields: Any) -> Schedule:
    """A Schedule built without validation, as a stored object the CRD schema did not see could be."""
    base: dict[str, Any] = {
        "type": "manual",
        "value": None,
        "time": None,
        "days_of_week": None,
        "day_of_month": None,
        "timezone": "UTC",
        "dst_policy": "FireOnce",
    }
    return Schedule.model_construct(**{**base, **fields})


# --------------------------------------------------------------------------------------------
# The time-zone facts the DST tests rely on
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "before", "after", "offset_before", "offset_after"),
    [
        (BERLIN, "2026-03-29T00:59", "2026-03-29T01:00", 1, 2),
        (BERLIN, "2026-10-25T00:59", "2026-10-25T01:00", 2, 1),
        (NEW_YORK, "2026-03-08T06:59", "2026-03-08T07:00", -5, -4),
        (NEW_YORK, "2026-11-01T05:59", "2026-11-01T06:00", -4, -5),
        (LORD_HOWE, "2026-04-04T14:59", "2026-04-04T15:00", 11, 10.5),
        (LORD_HOWE, "2026-10-03T15:29", "2026-10-03T15:30", 10.5, 11),
    ],
)
def test_transitions_the_dst_tests_assume(
    zone: ZoneInfo, before: str, after: str, offset_before: float, offset_after: float
) -> None:
    assert utc(before).astimezone(zone).utcoffset() == dt.timedelta(hours=offset_before)
    assert utc(after).astimezone(zone).utcoffset() == dt.timedelta(hours=offset_after)


# --------------------------------------------------------------------------------------------
# Every schedule type
# --------------------------------------------------------------------------------------------


def test_manual_never_fires() -> None:
    manual = sched("manual")
    assert fire_times(manual, utc("2026-01-01T00:00"), utc("2027-01-01T00:00")) == []
    assert next_fire_time(manual, utc("2026-01-01T00:00")) is None
    assert preview(manual, utc("2026-01-01T00:00"), 5) == []
    decided = due(manual, None, utc("2026-06-01T00:00"), utc("2026-01-01T00:00"))
    assert (decided.fire, decided.skipped_count, decided.expired, decided.next) == ([], 0, None, None)


def test_interval_is_anchored_at_the_unix_epoch() -> None:
    every5 = sched("interval", value="5 minutes")
    assert iso(preview(every5, utc("2026-01-05T12:03:17"), 3)) == [
        "2026-01-05T12:05Z",
        "2026-01-05T12:10Z",
        "2026-01-05T12:15Z",
    ]
    # "7 minutes" does not divide an hour: the fire times are multiples of 420 s since the epoch.
    every7 = sched("interval", value="7 minutes")
    for moment in preview(every7, utc("2026-01-05T12:03:17"), 20):
        assert (moment - INTERVAL_EPOCH) % dt.timedelta(minutes=7) == dt.timedelta(0)
    daily = sched("interval", value="1 day", timezone="Asia/Kolkata")  # elapsed time: the zone is ignored
    assert iso(preview(daily, utc("2026-01-05T12:00"), 2)) == ["2026-01-06T00:00Z", "2026-01-07T00:00Z"]
    seconds = sched("interval", value="30 seconds")
    assert [m.second for m in preview(seconds, utc("2026-01-05T12:00:01"), 3)] == [30, 0, 30]


def test_interval_bounds_are_exclusive_then_inclusive() -> None:
    hourly = sched("interval", value="1 hour")
    assert iso(fire_times(hourly, utc("2026-01-05T12:00"), utc("2026-01-05T14:00"))) == [
        "2026-01-05T13:00Z",
        "2026-01-05T14:00Z",
    ]
    assert fire_times(hourly, utc("2026-01-05T14:00"), utc("2026-01-05T12:00")) == []


def test_interval_ignores_dst() -> None:
    # Elapsed time: every hour stays one hour apart across Berlin's autumn fold.
    hourly = sched("interval", value="1 hour", timezone="Europe/Berlin", dst_policy="FireBoth")
    times = fire_times(hourly, utc("2026-10-24T22:30"), utc("2026-10-25T03:30"))
    assert iso(times)[0] == "2026-10-24T23:00Z"
    assert len(times) == 5
    assert {b - a for a, b in itertools.pairwise(times)} == {HOUR}


def test_cron_in_a_time_zone_with_a_half_hour_offset() -> None:
    weekdays = sched("cron", value="0 9 * * 1-5", timezone="Asia/Kolkata")
    # Friday 2 January 2026 .. Tuesday 6 January: Fri, Mon, Tue at 09:00 IST = 03:30Z.
    assert iso(fire_times(weekdays, utc("2026-01-02T00:00"), utc("2026-01-06T23:59"))) == [
        "2026-01-02T03:30Z",
        "2026-01-05T03:30Z",
        "2026-01-06T03:30Z",
    ]


def test_cron_in_new_york_follows_the_local_clock_through_the_year() -> None:
    nine = sched("cron", value="0 9 * * *", timezone="America/New_York")
    assert iso(preview(nine, utc("2026-01-10T00:00"), 1)) == ["2026-01-10T14:00Z"]  # EST
    assert iso(preview(nine, utc("2026-07-10T00:00"), 1)) == ["2026-07-10T13:00Z"]  # EDT


def test_cron_accepts_names_and_the_croniter_extensions_that_are_deterministic() -> None:
    fridays_in_march = sched("cron", value="0 0 * MAR FRI")
    assert iso(preview(fridays_in_march, utc("2026-01-01T00:00"), 2)) == [
        "2026-03-06T00:00Z",
        "2026-03-13T00:00Z",
    ]
    last_day = sched("cron", value="0 0 L * *")
    assert iso(preview(last_day, utc("2026-01-01T00:00"), 2)) == ["2026-01-31T00:00Z", "2026-02-28T00:00Z"]


def test_daily_in_kolkata() -> None:
    daily = sched("daily", time="09:00", timezone="Asia/Kolkata")
    assert iso(fire_times(daily, utc("2026-01-05T00:00"), utc("2026-01-07T12:00"))) == [
        "2026-01-05T03:30Z",
        "2026-01-06T03:30Z",
        "2026-01-07T03:30Z",
    ]


def test_weekly_on_several_days() -> None:
    # Monday, Wednesday and Friday at 09:00 in Kolkata, from Sunday 4 January 2026 for two weeks.
    weekly = sched("weekly", time="09:00", days_of_week=[5, 1, 3], timezone="Asia/Kolkata")
    times = fire_times(weekly, utc("2026-01-04T00:00"), utc("2026-01-18T00:00"))
    assert iso(times) == [f"2026-01-{day:02d}T03:30Z" for day in (5, 7, 9, 12, 14, 16)]
    assert {m.astimezone(KOLKATA).strftime("%a") for m in times} == {"Mon", "Wed", "Fri"}


def test_weekly_on_sunday_is_day_zero() -> None:
    sundays = sched("weekly", time="07:00", days_of_week=[0])
    assert iso(preview(sundays, utc("2026-01-01T00:00"), 2)) == ["2026-01-04T07:00Z", "2026-01-11T07:00Z"]


def test_monthly_on_the_31st_skips_short_months() -> None:
    monthly = sched("monthly", time="10:00", day_of_month=31, timezone="Europe/Berlin")
    times = fire_times(monthly, utc("2026-01-01T00:00"), utc("2027-01-01T00:00"))
    assert iso(times) == [
        "2026-01-31T09:00Z",
        "2026-03-31T08:00Z",
        "2026-05-31T08:00Z",
        "2026-07-31T08:00Z",
        "2026-08-31T08:00Z",
        "2026-10-31T09:00Z",
        "2026-12-31T09:00Z",
    ]


def test_monthly_on_the_29th_fires_in_february_of_leap_years_only() -> None:
    monthly = sched("monthly", time="00:00", day_of_month=29)
    februaries = [m for m in preview(monthly, utc("2026-01-01T00:00"), 40) if m.month == 2]
    assert iso(februaries) == ["2028-02-29T00:00Z"]


def test_monthly_in_a_spring_gap_fires_at_the_end_of_the_gap() -> None:
    # 29 March 2026 is also Berlin's spring-forward day: 02:30 does not exist.
    monthly = sched("monthly", time="02:30", day_of_month=29, timezone="Europe/Berlin")
    assert iso(preview(monthly, utc("2026-03-01T00:00"), 2)) == ["2026-03-29T01:00Z", "2026-04-29T00:30Z"]


# --------------------------------------------------------------------------------------------
# Daylight saving: both transitions, two zones, daily and cron, every policy
# --------------------------------------------------------------------------------------------

# (zone, wall time in the spring gap, spring window, expected FireOnce, wall time in the autumn fold,
#  autumn window, expected first and second occurrence)
DST_CASES = [
    pytest.param(
        "Europe/Berlin",
        "02:30",
        ("2026-03-28T12:00", "2026-03-30T12:00"),
        ["2026-03-29T01:00Z", "2026-03-30T00:30Z"],
        "02:30",
        ("2026-10-24T12:00", "2026-10-26T12:00"),
        ("2026-10-25T00:30Z", "2026-10-25T01:30Z", "2026-10-26T01:30Z"),
        id="berlin",
    ),
    pytest.param(
        "America/New_York",
        "02:30",
        ("2026-03-07T12:00", "2026-03-09T12:00"),
        ["2026-03-08T07:00Z", "2026-03-09T06:30Z"],
        "01:30",
        ("2026-10-31T12:00", "2026-11-02T12:00"),
        ("2026-11-01T05:30Z", "2026-11-01T06:30Z", "2026-11-02T06:30Z"),
        id="new-york",
    ),
]


def _as_kind(kind: str, wall: str, zone: str, policy: str) -> Schedule:
    if kind == "daily":
        return sched("daily", time=wall, timezone=zone, dst_policy=policy)
    hours, minutes = wall.split(":")
    return sched("cron", value=f"{int(minutes)} {int(hours)} * * *", timezone=zone, dst_policy=policy)


@pytest.mark.parametrize("kind", ["daily", "cron"])
@pytest.mark.parametrize(
    ("zone", "spring_wall", "spring", "spring_once", "autumn_wall", "autumn", "autumn_times"), DST_CASES
)
def test_dst_transitions(
    kind: str,
    zone: str,
    spring_wall: str,
    spring: tuple[str, str],
    spring_once: list[str],
    autumn_wall: str,
    autumn: tuple[str, str],
    autumn_times: tuple[str, str, str],
) -> None:
    first, second, next_day = autumn_times

    def times(policy: str, window: tuple[str, str], wall: str) -> list[str]:
        return iso(fire_times(_as_kind(kind, wall, zone, policy), utc(window[0]), utc(window[1])))

    # Spring: the wall time does not exist. FireOnce and FireBoth fire once at the end of the gap
    # (03:00 local); SkipMissing does not fire that day.
    assert times("FireOnce", spring, spring_wall) == spring_once
    assert times("FireBoth", spring, spring_wall) == spring_once
    assert times("SkipMissing", spring, spring_wall) == spring_once[1:]
    # Autumn: the wall time happens twice. FireOnce and SkipMissing fire at the first occurrence only.
    assert times("FireOnce", autumn, autumn_wall) == [first, next_day]
    assert times("SkipMissing", autumn, autumn_wall) == [first, next_day]
    assert times("FireBoth", autumn, autumn_wall) == [first, second, next_day]


def test_dst_with_a_thirty_minute_shift_on_lord_howe() -> None:
    # 5 April 2026: 01:30-01:59 happens twice (+11:00, then +10:30).
    repeated = sched("daily", time="01:45", timezone="Australia/Lord_Howe", dst_policy="FireBoth")
    assert iso(fire_times(repeated, utc("2026-04-03T00:00"), utc("2026-04-05T00:00"))) == [
        "2026-04-03T14:45Z",  # Saturday 4 April 01:45 +11:00
        "2026-04-04T14:45Z",  # Sunday 5 April 01:45 +11:00, first pass
        "2026-04-04T15:15Z",  # Sunday 5 April 01:45 +10:30, second pass
    ]
    once = sched("daily", time="01:45", timezone="Australia/Lord_Howe")
    assert iso(fire_times(once, utc("2026-04-04T12:00"), utc("2026-04-05T00:00"))) == ["2026-04-04T14:45Z"]
    # 4 October 2026: 02:00-02:29 does not exist; 02:15 fires at 02:30 +11:00 = 15:30Z on the 3rd.
    gap = sched("daily", time="02:15", timezone="Australia/Lord_Howe")
    assert iso(fire_times(gap, utc("2026-10-02T00:00"), utc("2026-10-04T23:59"))) == [
        "2026-10-02T15:45Z",
        "2026-10-03T15:30Z",
        "2026-10-04T15:15Z",
    ]
    skip = sched("daily", time="02:15", timezone="Australia/Lord_Howe", dst_policy="SkipMissing")
    assert iso(fire_times(skip, utc("2026-10-03T00:00"), utc("2026-10-04T00:00"))) == []


def test_frequent_cron_in_a_spring_gap_fires_the_collapsed_times_once() -> None:
    quarter = sched("cron", value="*/15 * * * *", timezone="Europe/Berlin")
    # 02:00, 02:15, 02:30, 02:45 and 03:00 local all land on 01:00Z: one run, no gap in UTC.
    assert iso(fire_times(quarter, utc("2026-03-29T00:40"), utc("2026-03-29T01:20"))) == [
        "2026-03-29T00:45Z",
        "2026-03-29T01:00Z",
        "2026-03-29T01:15Z",
    ]


def test_frequent_cron_in_an_autumn_fold_fires_once_or_both() -> None:
    window = (utc("2026-10-24T23:50"), utc("2026-10-25T02:10"))
    once = sched("cron", value="*/15 * * * *", timezone="Europe/Berlin")
    both = sched("cron", value="*/15 * * * *", timezone="Europe/Berlin", dst_policy="FireBoth")
    # FireOnce: 02:00-02:45 local fire on their first pass (CEST); the second pass (CET) is silent.
    assert iso(fire_times(once, *window)) == [
        "2026-10-25T00:00Z",
        "2026-10-25T00:15Z",
        "2026-10-25T00:30Z",
        "2026-10-25T00:45Z",
        "2026-10-25T02:00Z",
    ]
    # FireBoth: every quarter of an hour of elapsed time.
    both_times = fire_times(both, *window)
    assert len(both_times) == 9
    assert {b - a for a, b in itertools.pairwise(both_times)} == {dt.timedelta(minutes=15)}


def test_asking_from_inside_the_first_pass_of_a_repeated_hour_still_finds_the_second_pass() -> None:
    # 00:45Z is 02:45 CEST, the first pass; the wall times 02:00-02:45 come round again from 01:00Z.
    inside = utc("2026-10-25T00:45")
    daily = sched("daily", time="02:30", timezone="Europe/Berlin", dst_policy="FireBoth")
    assert iso(preview(daily, inside, 2)) == ["2026-10-25T01:30Z", "2026-10-26T01:30Z"]
    quarter = sched("cron", value="*/15 * * * *", timezone="Europe/Berlin", dst_policy="FireBoth")
    assert iso(preview(quarter, inside, 2)) == ["2026-10-25T01:00Z", "2026-10-25T01:15Z"]
    once = sched("cron", value="*/15 * * * *", timezone="Europe/Berlin")
    assert iso(preview(once, inside, 1)) == ["2026-10-25T02:00Z"]


def test_croniter_on_aware_times_fires_a_repeated_hour_twice_which_fire_once_must_not() -> None:
    # Why this module does not hand croniter aware datetimes: croniter's own iteration fires 02:30 on
    # both passes of Berlin's autumn fold, which is a duplicate run under the default FireOnce.
    iterator = croniter("30 2 * * *", dt.datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN))
    croniter_times = [iterator.get_next(dt.datetime).astimezone(dt.UTC) for _ in range(3)]
    assert iso(croniter_times) == ["2026-10-25T00:30Z", "2026-10-25T01:30Z", "2026-10-26T01:30Z"]
    ours = sched("cron", value="30 2 * * *", timezone="Europe/Berlin")
    assert iso(preview(ours, utc("2026-10-24T12:00"), 2)) == ["2026-10-25T00:30Z", "2026-10-26T01:30Z"]


CRON_EXPRESSIONS = st.tuples(
    st.sampled_from(["*", "*/7", "0", "5,35", "10-20/5", "59"]),
    st.sampled_from(["*", "*/5", "0", "9-17", "23", "1,13"]),
    st.sampled_from(["*", "1", "15", "31", "L", "15W", "1-7", "29", "?"]),
    st.sampled_from(["*", "2", "JAN,JUL", "*/3", "12"]),
    st.sampled_from(["*", "MON-FRI", "0", "6", "1#2", "sun,wed"]),
).map(" ".join)


@settings(max_examples=40, deadline=None)
@given(
    expression=CRON_EXPRESSIONS,
    after=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2040, 1, 1)),
)
def test_cron_fire_times_in_utc_are_exactly_croniters_matches(expression: str, after: dt.datetime) -> None:
    # In UTC no wall time is missing or repeated, so the fire times are croniter's own matches: this
    # pins the per-day expansion of the minute and hour fields to croniter's semantics of every field.
    reference = croniter(expression, after)
    try:
        expected = [reference.get_next(dt.datetime).replace(tzinfo=dt.UTC) for _ in range(120)]
    except CroniterBadDateError:  # croniter cannot iterate it (e.g. W with a day of week): refused
        assert check(sched("cron", value=expression))
        return
    assert check(sched("cron", value=expression)) == []
    assert preview(sched("cron", value=expression), after.replace(tzinfo=dt.UTC), 120) == expected


@pytest.fixture
def process_time_zone() -> Iterator[None]:
    """Run with the process's local time zone set to Europe/Berlin; restore it afterwards."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("process_time_zone")
def test_fire_times_do_not_depend_on_the_process_time_zone() -> None:
    # croniter is given naive wall-clock times; a DST day of the process's own zone changes nothing.
    quarter = sched("cron", value="*/30 * * * *")  # UTC
    times = fire_times(quarter, utc("2026-03-29T00:00"), utc("2026-03-29T03:00"))
    assert len(times) == 6
    assert {b - a for a, b in itertools.pairwise(times)} == {dt.timedelta(minutes=30)}


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("wall", ["00:00", "01:30", "01:45", "02:00", "02:15", "02:30", "03:00", "12:00"])
def test_daily_fires_once_per_local_day_over_a_whole_year(zone: str, wall: str) -> None:
    start, end = utc("2025-12-31T12:00"), utc("2027-01-01T12:00")
    tz = ZoneInfo(zone)
    year_days = {dt.date(2026, 1, 1) + n * DAY for n in range(365)}

    def per_day(policy: str) -> Counter[dt.date]:
        counted = Counter(
            m.astimezone(tz).date() for m in fire_times(_as_kind("daily", wall, zone, policy), start, end)
        )
        return Counter({day: n for day, n in counted.items() if day in year_days})

    once, both, skip = per_day("FireOnce"), per_day("FireBoth"), per_day("SkipMissing")
    assert set(once) == year_days
    assert set(once.values()) == {1}
    assert sum(both.values()) - 365 in (0, 1)  # one extra run when the time is in the repeated hour
    assert 365 - sum(skip.values()) in (0, 1)  # one fewer when it is in the skipped hour
    assert set(both.values()) <= {1, 2}
    assert set(skip.values()) == {1}


# --------------------------------------------------------------------------------------------
# Properties: additivity over adjacent ranges, next/preview agree with fire_times
# --------------------------------------------------------------------------------------------

PROPERTY_SCHEDULES = [
    sched("interval", value="7 minutes"),
    sched("interval", value="10 seconds"),
    sched("interval", value="2 days"),
    sched("cron", value="*/15 * * * *", timezone="Europe/Berlin", dst_policy="FireBoth"),
    sched("cron", value="*/20 1-3 * * *", timezone="America/New_York"),
    sched("cron", value="30 1 * * *", timezone="America/New_York", dst_policy="FireBoth"),
    sched("daily", time="02:15", timezone="Australia/Lord_Howe", dst_policy="SkipMissing"),
    sched("daily", time="01:45", timezone="Australia/Lord_Howe", dst_policy="FireBoth"),
    sched("weekly", time="02:30", days_of_week=[0, 3], timezone="Europe/Berlin"),
    sched("monthly", time="02:30", day_of_month=29, timezone="Europe/Berlin", dst_policy="FireBoth"),
]
INTERESTING_DAYS = [
    utc("2026-03-07T00:00"),
    utc("2026-03-28T00:00"),
    utc("2026-04-04T00:00"),
    utc("2026-10-02T00:00"),
    utc("2026-10-24T00:00"),
    utc("2026-10-31T00:00"),
    utc("2026-06-15T00:00"),
]
instants = st.builds(
    lambda day, seconds: day + dt.timedelta(seconds=seconds),
    st.sampled_from(INTERESTING_DAYS),
    st.integers(min_value=0, max_value=3 * 86400),
)


@FAST
@given(
    schedule=st.sampled_from(PROPERTY_SCHEDULES),
    a=instants,
    split=st.integers(min_value=0, max_value=2 * 86400),
    rest=st.integers(min_value=0, max_value=2 * 86400),
    micros=st.integers(min_value=0, max_value=999_999),
)
def test_fire_times_are_additive_over_adjacent_ranges(
    schedule: Schedule, a: dt.datetime, split: int, rest: int, micros: int
) -> None:
    a = a + dt.timedelta(microseconds=micros)
    b = a + dt.timedelta(seconds=split)
    c = b + dt.timedelta(seconds=rest)
    whole = fire_times(schedule, a, c)
    assert whole == fire_times(schedule, a, b) + fire_times(schedule, b, c)
    assert whole == sorted(set(whole))
    assert all(a < m <= c and m.tzinfo is dt.UTC for m in whole)


@FAST
@given(schedule=st.sampled_from(PROPERTY_SCHEDULES), after=instants)
def test_next_and_preview_agree_with_fire_times(schedule: Schedule, after: dt.datetime) -> None:
    ahead = preview(schedule, after, 4)
    assert len(ahead) == 4
    assert next_fire_time(schedule, after) == ahead[0]
    assert fire_times(schedule, after, ahead[-1]) == ahead
    # Asking from any instant in between continues the same sequence: nothing shifts.
    assert preview(schedule, ahead[0], 3) == ahead[1:]
    assert preview(schedule, ahead[1] - SECOND, 3) == ahead[1:]


@FAST
@given(
    value=st.integers(min_value=1, max_value=90),
    unit=st.sampled_from(["seconds", "minutes", "hours", "days"]),
    after=st.datetimes(
        min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2090, 1, 1), timezones=st.just(dt.UTC)
    ),
)
def test_interval_fire_times_are_whole_multiples_since_the_epoch(
    value: int, unit: str, after: dt.datetime
) -> None:
    every = schedules.interval_of(f"{value} {unit}")
    if every < MIN_INTERVAL:
        assert check(sched("interval", value=f"{value} {unit}"))
        return
    ahead = preview(sched("interval", value=f"{value} {unit}"), after, 3)
    assert ahead[0] > after >= ahead[0] - every
    for moment in ahead:
        assert (moment - INTERVAL_EPOCH) % every == dt.timedelta(0)


def test_bounds_must_be_aware_and_in_any_zone() -> None:
    hourly = sched("interval", value="1 hour")
    with pytest.raises(ValueError, match="timezone-aware"):
        fire_times(hourly, dt.datetime(2026, 1, 1), utc("2026-01-02T00:00"))
    # The same instants given in another zone give the same UTC fire times.
    berlin_after = utc("2026-01-05T12:30").astimezone(BERLIN)
    assert preview(hourly, berlin_after, 2) == preview(hourly, utc("2026-01-05T12:30"), 2)
    assert preview(hourly, berlin_after, 1)[0].tzinfo is dt.UTC


def test_invalid_schedules_raise_schedule_error_from_the_computations() -> None:
    bad = unchecked(type="daily", time="09:00", timezone="Mars/Olympus_Mons")
    with pytest.raises(ScheduleError, match="timezone"):
        next_fire_time(bad, utc("2026-01-01T00:00"))
    with pytest.raises(ScheduleError):
        due(bad, None, utc("2026-01-02T00:00"), utc("2026-01-01T00:00"))
    with pytest.raises(ValueError, match="n must be"):
        preview(sched("interval", value="1 hour"), utc("2026-01-01T00:00"), -1)


def test_a_cron_expression_that_never_matches_has_no_fire_times() -> None:
    never = unchecked(type="cron", value="0 0 30 2 *")
    assert check(never)
    with pytest.raises(ScheduleError, match="never"):
        next_fire_time(never, utc("2026-01-01T00:00"))


# --------------------------------------------------------------------------------------------
# check()
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (
            unchecked(type="daily", time="09:00", timezone="Mars/Olympus_Mons"),
            r"^timezone: 'Mars/Olympus_Mons' is not a time zone",
        ),
        (unchecked(type="daily", time="09:00", timezone="Europe"), r"^timezone: 'Europe' is not a time zone"),
        (unchecked(type="daily", time="09:00", timezone="../etc/passwd"), r"^timezone: "),
        (
            unchecked(type="cron", value="61 0 * * *"),
            r"^value: '61 0 \* \* \*' is not a valid cron expression",
        ),
        (
            unchecked(type="cron", value="0 0 * * * *"),
            r"^value: .* has 6 field\(s\); a cron expression has exactly five",
        ),
        (unchecked(type="cron", value="@daily"), r"^value: '@daily': cron macros"),
        (unchecked(type="cron", value="R 0 * * *"), r"random \(R\) and hashed \(H\)"),
        (unchecked(type="cron", value="0 H * * *"), r"random \(R\) and hashed \(H\)"),
        (unchecked(type="cron", value="0 0 31 4 *"), r"never matches a date"),
        (unchecked(type="cron"), r"^value: a cron schedule needs"),
        (unchecked(type="interval", value="5 seconds"), r"shorter than the minimum interval of 10 seconds"),
        (unchecked(type="interval", value="9 seconds"), r"shorter than the minimum interval"),
        (unchecked(type="interval", value="366 days"), r"longer than the maximum interval of 365 days"),
        (unchecked(type="interval", value="99999999999 days"), r"longer than the maximum interval"),
        (
            unchecked(type="interval", value="every 5 minutes"),
            r"^value: 'every 5 minutes' is not an interval",
        ),
        (unchecked(type="interval", value="5 fortnights"), r"is not an interval"),
        (unchecked(type="interval"), r"^value: an interval schedule needs"),
        (unchecked(type="daily"), r"^time: a daily schedule needs a time of day"),
        (unchecked(type="daily", time="24:00"), r"^time: '24:00' is not a time of day"),
        (unchecked(type="weekly", time="09:00", days_of_week=[]), r"^daysOfWeek: a weekly schedule needs"),
        (unchecked(type="weekly", time="09:00", days_of_week=[7]), r"^daysOfWeek: \[7\]: each day is 0"),
        (unchecked(type="weekly", time="09:00", days_of_week=[1, 1]), r"more than once"),
        (unchecked(type="monthly", time="09:00"), r"^dayOfMonth: a monthly schedule needs"),
        (unchecked(type="monthly", time="09:00", day_of_month=32), r"^dayOfMonth: 32 is not a day"),
        (unchecked(type="hourly"), r"^type: 'hourly' is not one of"),
        (unchecked(type="daily", time="09:00", dst_policy="Sometimes"), r"^dstPolicy: 'Sometimes'"),
    ],
)
def test_check_explains_each_problem(schedule: Schedule, expected: str) -> None:
    problems = check(schedule)
    assert len(problems) == 1, problems
    assert re.search(expected, problems[0]), problems[0]


@pytest.mark.parametrize(
    "schedule",
    [
        sched("manual"),
        sched("interval", value="10 seconds"),
        sched("interval", value="365 days"),
        sched("cron", value="0 2 * * 1-5", timezone="Asia/Kolkata"),
        sched("cron", value="  */5   *  * * *  "),
        sched("cron", value="0 0 29 2 *"),
        sched("daily", time="02:30", timezone="Australia/Lord_Howe"),
        sched("weekly", time="09:00", days_of_week=[0, 6]),
        sched("monthly", time="09:00", day_of_month=31, timezone="America/New_York"),
    ],
)
def test_check_accepts_good_schedules(schedule: Schedule) -> None:
    assert check(schedule) == []
    assert schedules.issues(schedule) == []


def test_check_reports_every_problem_and_never_raises() -> None:
    problems = check(unchecked(type="weekly", time="25:61", days_of_week=None, timezone="Nowhere/City"))
    assert [p.split(":")[0] for p in problems] == ["timezone", "time", "daysOfWeek"]
    assert schedules.issues(unchecked(type="monthly", time="09:00"))[0][0] == "dayOfMonth"
    # Garbage a model built without validation can hold: still a message, not an exception.
    weird = unchecked(type="weekly", time=9, days_of_week="Mon")
    assert check(weird)


# --------------------------------------------------------------------------------------------
# due(): catch-up after restarts and outages
# --------------------------------------------------------------------------------------------

HOURLY_UTC: dict[str, Any] = {"type": "cron", "value": "0 * * * *"}


def hourly(policy: str = "none", **catchup: Any) -> Schedule:
    return Schedule.model_validate({**HOURLY_UTC, "catchup": {"policy": policy, **catchup}})


def test_due_fires_an_on_time_fire_time_once_and_then_nothing() -> None:
    schedule = hourly()
    start = utc("2026-01-05T09:30")
    first = due(schedule, None, utc("2026-01-05T10:00:00.250"), start)
    assert iso(first.fire) == ["2026-01-05T10:00Z"]
    assert (first.skipped, first.skipped_count, first.expired) == ([], 0, None)
    assert first.next == utc("2026-01-05T11:00")
    # The next reconcile, with the checkpoint, decides nothing again.
    again = due(schedule, first.checkpoint, utc("2026-01-05T10:00:30"), start)
    assert (again.fire, again.skipped_count) == ([], 0)


def test_due_is_the_same_for_a_second_operator_without_the_checkpoint() -> None:
    # Exactly once does not depend on the checkpoint: a restarted operator that lost it decides the same
    # fire time again, and run_name gives the same name, so the API server answers 409.
    schedule = hourly()
    now = utc("2026-01-05T10:00:20")
    one = due(schedule, None, now, utc("2026-01-05T09:30"))
    two = due(schedule, utc("2026-01-05T09:00"), now, utc("2026-01-05T09:30"))
    assert one.fire == two.fire
    assert [run_name("etl", t) for t in one.fire] == [run_name("etl", t) for t in two.fire]


@pytest.mark.parametrize(
    ("late", "fires"),
    [(dt.timedelta(0), True), (ON_TIME_GRACE, True), (ON_TIME_GRACE + SECOND, False)],
)
def test_catchup_none_fires_within_the_grace_only(late: dt.timedelta, fires: bool) -> None:
    decided = due(hourly(), None, utc("2026-01-05T10:00") + late, utc("2026-01-05T09:30"))
    assert bool(decided.fire) is fires
    assert decided.skipped_count == (0 if fires else 1)
    if not fires:
        assert decided.skipped[0].reason == REASON_CATCHUP_NONE
        assert "missed by 1m1s" in decided.skipped[0].message


def test_catchup_none_after_a_long_outage_skips_everything_but_an_on_time_run() -> None:
    # Operator down from 09:30 on Monday to 10:00:30 on Wednesday: 49 hourly fire times, the 24 from
    # 11:00 on Tuesday inside the default one-day window; only the on-time 10:00 runs.
    schedule = hourly()
    decided = due(schedule, utc("2026-01-05T09:30"), utc("2026-01-07T10:00:30"), utc("2026-01-01T00:00"))
    assert iso(decided.fire) == ["2026-01-07T10:00Z"]
    assert decided.skipped_count == 23
    assert iso([decided.skipped[0].scheduled_time, decided.skipped[-1].scheduled_time]) == [
        "2026-01-06T11:00Z",
        "2026-01-07T09:00Z",
    ]
    assert {s.reason for s in decided.skipped} == {REASON_CATCHUP_NONE}
    assert decided.expired is not None
    assert decided.expired.first == utc("2026-01-05T10:00")
    assert decided.expired.before == utc("2026-01-06T10:00:30")
    assert decided.checkpoint == utc("2026-01-07T10:00:30")
    assert decided.next == utc("2026-01-07T11:00")


def test_catchup_latest_runs_the_most_recent_missed_fire_time_within_the_window() -> None:
    schedule = hourly("latest", window_seconds=6 * 3600)
    decided = due(schedule, utc("2026-01-05T09:30"), utc("2026-01-05T15:20"), utc("2026-01-01T00:00"))
    assert iso(decided.fire) == ["2026-01-05T15:00Z"]
    assert [s.reason for s in decided.skipped] == [REASON_SUPERSEDED] * 5
    assert iso([s.scheduled_time for s in decided.skipped]) == [f"2026-01-05T{h}:00Z" for h in range(10, 15)]
    assert decided.expired is None


def test_catchup_latest_runs_nothing_when_every_missed_time_is_older_than_the_window() -> None:
    daily = Schedule.model_validate(
        {"type": "daily", "time": "03:00", "catchup": {"policy": "latest", "windowSeconds": 3600}}
    )
    decided = due(daily, utc("2026-01-05T02:00"), utc("2026-01-05T12:00"), utc("2026-01-01T00:00"))
    assert (decided.fire, decided.skipped_count) == ([], 0)
    assert decided.expired is not None
    assert iso([decided.expired.first]) == ["2026-01-05T03:00Z"]


def test_catchup_all_runs_the_newest_max_runs_inside_the_window_oldest_first() -> None:
    schedule = hourly("all", max_runs=3, window_seconds=5 * 3600)
    decided = due(schedule, utc("2026-01-05T00:30"), utc("2026-01-05T12:10"), utc("2026-01-01T00:00"))
    # Inside the window (07:10 .. 12:10): 08:00 .. 12:00, five fire times; the newest three run.
    assert iso(decided.fire) == ["2026-01-05T10:00Z", "2026-01-05T11:00Z", "2026-01-05T12:00Z"]
    assert iso([s.scheduled_time for s in decided.skipped]) == ["2026-01-05T08:00Z", "2026-01-05T09:00Z"]
    assert {s.reason for s in decided.skipped} == {REASON_MAX_RUNS}
    assert decided.expired is not None
    assert iso([decided.expired.first, decided.expired.before]) == ["2026-01-05T01:00Z", "2026-01-05T07:10Z"]


def test_catchup_all_includes_a_fire_time_exactly_at_the_window_edge() -> None:
    schedule = hourly("all", max_runs=100, window_seconds=3 * 3600)
    decided = due(schedule, utc("2026-01-05T00:30"), utc("2026-01-05T12:00"), utc("2026-01-01T00:00"))
    assert iso(decided.fire) == [f"2026-01-05T{h:02d}:00Z" for h in (9, 10, 11, 12)]


def test_catchup_all_with_room_for_everything_runs_every_missed_time() -> None:
    schedule = hourly("all", max_runs=1000)
    decided = due(schedule, utc("2026-01-05T00:30"), utc("2026-01-05T05:30"), utc("2026-01-01T00:00"))
    assert iso(decided.fire) == [f"2026-01-05T0{h}:00Z" for h in range(1, 6)]
    assert (decided.skipped_count, decided.expired) == (0, None)


def test_skipped_list_is_capped_but_counted() -> None:
    every_minute = Schedule.model_validate({"type": "cron", "value": "* * * * *"})
    decided = due(every_minute, None, utc("2026-01-05T12:00:30"), utc("2026-01-05T06:00"))
    assert decided.skipped_count == 6 * 60 - 1
    assert len(decided.skipped) == MAX_LISTED_SKIPS
    assert decided.skipped[-1].scheduled_time == utc("2026-01-05T11:59")  # the newest are listed


def test_started_at_bounds_the_fire_times_and_now_before_it_decides_nothing() -> None:
    schedule = hourly("all")
    # The schedule took effect at 10:30: the 10:00 fire time before it is not a missed one.
    decided = due(schedule, None, utc("2026-01-05T11:00:05"), utc("2026-01-05T10:30"))
    assert iso(decided.fire) == ["2026-01-05T11:00Z"]
    # started_at after last_fired (a changed schedule, a resumed workflow) wins.
    decided = due(schedule, utc("2026-01-05T01:00"), utc("2026-01-05T11:00:05"), utc("2026-01-05T10:30"))
    assert iso(decided.fire) == ["2026-01-05T11:00Z"]
    early = due(schedule, None, utc("2026-01-05T10:00"), utc("2026-01-05T10:30"))
    assert (early.fire, early.checkpoint) == ([], utc("2026-01-05T10:30"))
    assert early.next == utc("2026-01-05T11:00")


def test_due_reports_the_next_fire_time_for_the_requeue() -> None:
    daily = Schedule.model_validate({"type": "daily", "time": "02:30", "timezone": "Europe/Berlin"})
    decided = due(daily, utc("2026-03-28T02:00"), utc("2026-03-28T12:00"), utc("2026-01-01T00:00"))
    assert decided.next == utc("2026-03-29T01:00")


RECONCILE_GAPS = st.lists(
    st.one_of(
        st.integers(min_value=1, max_value=120),
        st.integers(min_value=121, max_value=3 * 86400),
    ),
    min_size=1,
    max_size=12,
)


@FAST
@given(
    policy=st.sampled_from(["none", "latest", "all"]),
    max_runs=st.integers(min_value=1, max_value=5),
    window=st.sampled_from([60, 900, 7200, 86400]),
    zone_policy=st.sampled_from(
        [("UTC", "FireOnce"), ("Europe/Berlin", "FireBoth"), ("America/New_York", "FireOnce")]
    ),
    gaps=RECONCILE_GAPS,
    start_offset=st.integers(min_value=0, max_value=3 * 86400),
)
def test_chained_reconciles_decide_every_fire_time_exactly_once(
    policy: str,
    max_runs: int,
    window: int,
    zone_policy: tuple[str, str],
    gaps: list[int],
    start_offset: int,
) -> None:
    zone, dst_policy = zone_policy
    schedule = Schedule.model_validate(
        {
            "type": "cron",
            "value": "*/20 * * * *",
            "timezone": zone,
            "dstPolicy": dst_policy,
            "catchup": {"policy": policy, "maxRuns": max_runs, "windowSeconds": window},
        }
    )
    started = utc("2026-10-23T00:00") + dt.timedelta(seconds=start_offset)
    now = started
    checkpoint: dt.datetime | None = None
    fired: list[dt.datetime] = []
    skipped = 0
    expired = 0
    for gap in gaps:
        now += dt.timedelta(seconds=gap)
        decided: Due = due(schedule, checkpoint, now, started)
        assert decided.fire == sorted(decided.fire)
        assert len(decided.fire) <= (max_runs if policy == "all" else 1)
        assert all(now - t <= max(dt.timedelta(seconds=window), ON_TIME_GRACE) for t in decided.fire)
        assert decided.next is not None
        assert decided.next > now
        fired += decided.fire
        skipped += decided.skipped_count
        if decided.expired is not None:
            tick = dt.timedelta(microseconds=1)
            expired += len(fire_times(schedule, decided.expired.first - tick, decided.expired.before - tick))
        checkpoint = decided.checkpoint
    everything = fire_times(schedule, started, now)
    assert len(fired) == len(set(fired))
    assert set(fired) <= set(everything)
    assert len(fired) + skipped + expired == len(everything)


# --------------------------------------------------------------------------------------------
# run_name, concurrency, wake_at
# --------------------------------------------------------------------------------------------


def test_run_name_is_deterministic_and_utc() -> None:
    moment = utc("2026-03-29T01:00")
    assert run_name("nightly-etl", moment) == "nightly-etl-s-20260329010000"
    assert run_name("nightly-etl", moment.astimezone(BERLIN)) == "nightly-etl-s-20260329010000"
    assert run_name("nightly-etl", moment) == run_name("nightly-etl", utc("2026-03-29T01:00"))
    assert run_name("nightly-etl", moment) != run_name("nightly-etl", moment + SECOND)
    assert run_name("nightly-etl", moment) != run_name("nightly-et", moment)


def test_run_names_of_both_passes_of_a_repeated_hour_differ() -> None:
    both = sched("daily", time="02:30", timezone="Europe/Berlin", dst_policy="FireBoth")
    names = [run_name("wf", t) for t in fire_times(both, utc("2026-10-25T00:00"), utc("2026-10-25T02:00"))]
    assert names == ["wf-s-20261025003000", "wf-s-20261025013000"]


@pytest.mark.parametrize("workflow", ["a", "etl.v2", "x" * 63, "y" * 253, "a" + "-" * 240 + "b"])
def test_run_name_is_a_dns_subdomain_of_at_most_253_characters(workflow: str) -> None:
    name = run_name(workflow, utc("2026-01-05T10:00"))
    assert len(name) <= 253
    assert DNS_SUBDOMAIN.fullmatch(name), name
    assert name.endswith("-s-20260105100000")
    assert name == run_name(workflow, utc("2026-01-05T10:00"))


def test_run_names_of_different_long_workflows_differ() -> None:
    moment = utc("2026-01-05T10:00")
    assert run_name("a" * 250 + "x", moment) != run_name("a" * 250 + "y", moment)


def test_run_name_refuses_what_is_not_a_fire_time_or_an_object_name() -> None:
    with pytest.raises(ValueError, match="whole second"):
        run_name("wf", utc("2026-01-05T10:00:00.5"))
    with pytest.raises(ValueError, match="timezone-aware"):
        run_name("wf", dt.datetime(2026, 1, 5, 10, 0))
    with pytest.raises(ValueError, match="DNS subdomain"):
        run_name("Not_A_Name", utc("2026-01-05T10:00"))


@FAST
@given(
    moment=st.datetimes(
        min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9998, 1, 1), timezones=st.just(dt.UTC)
    )
)
def test_run_name_maps_distinct_seconds_to_distinct_valid_names(moment: dt.datetime) -> None:
    whole = moment.replace(microsecond=0)
    name = run_name("wf", whole)
    assert DNS_SUBDOMAIN.fullmatch(name)
    assert dt.datetime.strptime(name.removeprefix("wf-s-"), "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC) == whole


def test_concurrency_allow_always_creates() -> None:
    assert concurrency("Allow", ["wf-s-1"]) == schedules.Decision(create=True)
    assert concurrency("Allow", []) == schedules.Decision(create=True)


def test_concurrency_forbid_skips_while_a_run_is_active() -> None:
    decision = concurrency("Forbid", ["wf-s-2", "wf-s-1"])
    assert (decision.create, decision.cancel, decision.skip_reason) == (False, [], REASON_CONCURRENCY_FORBID)
    assert "wf-s-1, wf-s-2" in decision.message
    assert concurrency("Forbid", []) == schedules.Decision(create=True)


def test_concurrency_replace_creates_and_cancels_the_active_runs() -> None:
    decision = concurrency("Replace", ["wf-s-2", "wf-s-1", "wf-s-2"])
    assert (decision.create, decision.cancel, decision.skip_reason) == (True, ["wf-s-1", "wf-s-2"], None)
    assert concurrency("Replace", []) == schedules.Decision(create=True)


def test_concurrency_refuses_an_unknown_policy() -> None:
    with pytest.raises(ValueError, match="Sometimes"):
        concurrency("Sometimes", [])


def test_wake_at_is_the_lead_before_the_fire_time() -> None:
    assert wake_at(utc("2026-01-05T10:00"), dt.timedelta(seconds=45)) == utc("2026-01-05T09:59:15")
    assert wake_at(utc("2026-01-05T10:00").astimezone(KOLKATA), dt.timedelta(0)) == utc("2026-01-05T10:00")
    with pytest.raises(ValueError, match="negative"):
        wake_at(utc("2026-01-05T10:00"), -SECOND)


# --- activity ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "state", "deployed", "valid", "reason"),
    [
        (None, "Active", True, True, "Manual"),
        (sched("manual"), "Active", True, True, "Manual"),
        (sched("daily", time="02:30", timezone="Nowhere/Atlantis"), "Active", True, True, "Invalid"),
        (sched("daily", time="02:30"), "Active", True, False, "Invalid"),
        (sched("daily", time="02:30"), "Paused", True, True, "NotActive"),
        (sched("daily", time="02:30"), "Draft", False, True, "NotActive"),
        (sched("daily", time="02:30"), "Active", False, True, "NotDeployed"),
        (sched("daily", time="02:30"), "Active", True, True, "Active"),
    ],
)
def test_activity_names_the_first_reason_a_schedule_does_not_fire(
    schedule: Schedule | None, state: str, deployed: bool, valid: bool, reason: str
) -> None:
    result = schedules.activity(schedule, state=state, deployed=deployed, valid=valid)
    assert (result.active, result.reason) == (reason == "Active", reason)
    assert result.message


def test_an_unknown_zone_is_named_in_the_inactive_message() -> None:
    bad = sched("daily", time="02:30", timezone="Nowhere/Atlantis")
    assert "Nowhere/Atlantis" in schedules.activity(bad, state="Active", deployed=True).message


def test_cron_fire_times_end_quietly_before_the_year_10000() -> None:
    leap_day = sched("cron", value="0 6 29 2 *")
    after = dt.datetime(9990, 1, 1, tzinfo=dt.UTC)
    assert preview(leap_day, after, 5) == [
        dt.datetime(9992, 2, 29, 6, tzinfo=dt.UTC),
        dt.datetime(9996, 2, 29, 6, tzinfo=dt.UTC),
    ]
    assert next_fire_time(leap_day, dt.datetime(9996, 3, 1, tzinfo=dt.UTC)) is None
