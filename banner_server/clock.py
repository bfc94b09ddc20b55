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


def quarter_source(clock: Clock, pinned: int | None = None, tick: Callable[[], float] | None = None
                   ) -> Callable[[], int]:
    """The current quarter.  With `tick` (time.monotonic in the server) the clock is read
    at most every 50 ms instead of on every request: datetime.now(zone) costs more than
    the rest of the quarter logic, and a quarter boundary is seen at most 50 ms late."""
    if pinned is not None:
        return lambda: pinned
    if tick is None:
        return lambda: quarter_of(clock())
    state = [float("-inf"), 1]

    def cached() -> int:
        now = tick()
        if now - state[0] >= 0.05:
            state[0], state[1] = now, quarter_of(clock())
        return state[1]

    return cached


def hour_of(moment: dt.datetime) -> str:
    """The local hour an event belongs to, as `banners export --hour` names it."""
    return moment.strftime("%Y-%m-%dT%H")


def hour_source(clock: Clock, tick: Callable[[], float] | None = None) -> Callable[[], str]:
    """The current local hour (`2026-11-28T23`), read from the clock at most every 50 ms
    with `tick`, as the quarter is: impressions are counted per hour and quarter."""
    if tick is None:
        return lambda: hour_of(clock())
    state = [float("-inf"), ""]

    def cached() -> str:
        now = tick()
        if now - state[0] >= 0.05:
            state[0], state[1] = now, hour_of(clock())
        return state[1]

    return cached
