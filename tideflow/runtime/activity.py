"""Reports the runtime's activity as ``status.lastActivityAt`` of its Workflow, rate-limited.

Idle-shutdown measures from ``lastActivityAt``, so it must be recent while the runtime works, but a busy
runtime must not write its Workflow on every run. :class:`ActivityReporter` writes at most once per
``interval`` (30 s): the first activity after a quiet interval is written at once, later ones are folded
into one trailing write at the end of the interval, which carries the time of the *latest* activity (not
the time of the write). Run starts and ends, triggers and, while runs are in flight, a periodic tick are
activity. The write is a merge patch on the ``workflows/status`` subresource; failures are logged and
retried with the next activity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from tideflow.core.clock import Clock, format_time, system_clock

__all__ = ["ActivityReporter"]

logger = logging.getLogger(__name__)

ActivityWriter = Callable[[datetime], Awaitable[None]]
"""Writes ``lastActivityAt``; raises on failure."""


class ActivityReporter:
    """Rate-limited ``lastActivityAt`` reporting; call :meth:`note` on activity, :meth:`close` at the end."""

    def __init__(
        self,
        write: ActivityWriter,
        *,
        interval: float = 30.0,
        clock: Clock = system_clock,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._write = write
        self.interval = interval
        self._clock = clock
        self._monotonic = monotonic
        self._latest: datetime | None = None
        self._written: datetime | None = None
        self._last_write_at: float | None = None
        self._pending: asyncio.Task[None] | None = None
        self.writes = 0

    def _now_monotonic(self) -> float:
        return self._monotonic() if self._monotonic is not None else asyncio.get_running_loop().time()

    def note(self, moment: datetime | None = None) -> None:
        """Record activity now (or at ``moment``); schedule a write if none is due."""
        moment = moment or self._clock()
        if self._latest is None or moment > self._latest:
            self._latest = moment
        if self._pending is None or self._pending.done():
            delay = 0.0
            if self._last_write_at is not None:
                delay = max(0.0, self._last_write_at + self.interval - self._now_monotonic())
            self._pending = asyncio.get_running_loop().create_task(self._flush_after(delay))

    async def _flush_after(self, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        await self.flush()
        latest = self._latest
        if latest is not None and (self._written is None or latest > self._written):
            # Activity arrived during the write, or the write failed: once more, an interval later.
            self._pending = asyncio.get_running_loop().create_task(self._flush_after(self.interval))

    async def flush(self) -> None:
        """Write the latest activity now if it has not been written yet."""
        latest = self._latest
        if latest is None or (self._written is not None and latest <= self._written):
            return
        self._last_write_at = self._now_monotonic()
        try:
            await self._write(latest)
        except Exception as exc:
            logger.warning("could not report lastActivityAt=%s: %s", format_time(latest), exc)
            return
        self.writes += 1
        self._written = latest

    async def close(self) -> None:
        """Write what is pending (without waiting for the interval) and stop."""
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending
        await self.flush()
