"""Clocks: the system clock, and a file-driven clock that lets tests move time for another process."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_time(text: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp (``Z`` or an offset) into an aware UTC datetime."""
    moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a UTC offset: {text!r}")
    return moment.astimezone(dt.UTC)


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_clock(path: str | Path) -> Clock:
    """A clock that reads 'now' from a file holding an RFC 3339 timestamp (tests write it).

    While the file is missing or unreadable the system clock is used, so a test can hand over
    control at any point.
    """
    source = Path(path)

    def now() -> dt.datetime:
        try:
            return parse_time(source.read_text())
        except (OSError, ValueError):
            return system_clock()

    return now
