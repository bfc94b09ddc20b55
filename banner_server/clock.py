"""Which quarter of the hour it is, from an injectable clock."""

from __future__ import annotations

import datetime as dt
from typing import Callable
from zoneinfo import ZoneInfo

Clock = Callable[[], dt.datetime]


def quarter_of(moment: dt.datetime) -> int:
    """Minute 0-14 -> 1, 15-29 -> 2, 30-44 -> 3, 45-59 -> 4."""
    return moment.minute // 15 + 1


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def system_clock(tz: str | None = None, utcnow: Clock = _utcnow) -> Clock:
    """Now in `tz`, or in the system's zone.  The zone matters: some are offset by
    30 or 45 minutes from UTC, which moves the quarter."""
    zone = ZoneInfo(tz) if tz else None
    return lambda: utcnow().astimezone(zone)


def quarter_source(clock: Clock, pinned: int | None = None) -> Callable[[], int]:
    if pinned is not None:
        return lambda: pinned
    return lambda: quarter_of(clock())
