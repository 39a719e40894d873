"""When to reconcile a Workflow again on its own: pure timing rules for the reconciler's timers.

Two kinds of wake-up, one timer per Workflow:

- **Planned**: a reconcile asks to run again at an instant (a schedule's fire time, the wake lead
  before it, a lifecycle transition). :func:`wake_delay` arms the timer for exactly that instant, so
  a fire time is acted on when it comes, not a fixed minimum later. Only a run of wake-ups that did
  nothing (the timer fired, the reconcile wrote nothing and asked for a moment just ahead again, as
  a clock that lags the timer can cause) gets a growing floor, so nothing can spin; the first such
  wake-up re-arms exactly, which is what a timer that fired a hair early needs.
- **Retry**: a reconcile that failed (the API server answered 500, timed out, kept conflicting) is
  retried after :func:`retry_delay`, an exponential back-off from ``RETRY_BASE`` doubling up to
  ``RETRY_CAP``, never sooner than ``RETRY_BASE`` and never in a tight loop, and never later than a
  moment the last successful plan asked for. Failures stop counting once a reconcile succeeds.
"""

from __future__ import annotations

import datetime as dt

RETRY_BASE = 0.5
"""Seconds before the first retry of a failed reconcile."""
RETRY_CAP = 60.0
"""The longest wait between two retries (a failing Workflow is then retried once a minute)."""
IDLE_FLOOR = 0.01
"""Seconds of floor after the second wake-up in a row that did nothing; doubles with each more."""
IDLE_FLOOR_CAP = 1.0
MAX_DELAY = 3600.0
"""Timers are re-armed at least hourly (the resync covers the rest)."""


def retry_delay(failures: int, *, base: float = RETRY_BASE, cap: float = RETRY_CAP) -> float:
    """Seconds to wait after the ``failures``-th failure in a row: ``base * 2**(failures-1)``, capped."""
    if failures < 1:
        return 0.0
    exponent = min(failures - 1, 32)  # 2**32 * base is far past any cap: no overflow, no float inf
    return float(min(base * 2**exponent, cap))


def idle_floor(idle_wakeups: int) -> float:
    """The least delay after ``idle_wakeups`` timer wake-ups in a row that did nothing."""
    if idle_wakeups < 2:
        return 0.0
    return float(min(IDLE_FLOOR * 2 ** min(idle_wakeups - 2, 16), IDLE_FLOOR_CAP))


def idle_wakeups(previous: int, *, woken: bool, acted: bool) -> int:
    """The count of timer wake-ups in a row that did nothing, after one more reconcile.

    A reconcile that wrote something resets it; one its timer woke that wrote nothing adds one; any
    other (a watch event, the resync) that wrote nothing leaves it as it was.
    """
    if acted:
        return 0
    return previous + 1 if woken else previous


def wake_delay(at: dt.datetime, now: dt.datetime, idle_wakeups: int = 0) -> float:
    """Seconds from ``now`` until the planned moment ``at`` (0 if past), floored only after idle wake-ups."""
    delay = (at - now).total_seconds()
    return min(max(delay, idle_floor(idle_wakeups), 0.0), MAX_DELAY)


def retry_wake_delay(failures: int, planned: dt.datetime | None, now: dt.datetime) -> float:
    """Seconds until a failed reconcile runs again: the back-off, or a planned moment still ahead if sooner.

    A planned moment already past never shortens the back-off: the failure may be the reconcile that
    moment woke, and retrying it at once would spin.
    """
    delay = retry_delay(failures)
    if planned is not None and planned > now:
        delay = min(delay, (planned - now).total_seconds())
    return delay
