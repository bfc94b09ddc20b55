"""Which quarter and hour it is, from an injectable clock."""

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


def _every(read: Callable[[], object], tick: Callable[[], float], seconds: float = 0.05):
    """`read`, called at most every `seconds` of `tick`; its last value in between."""
    state = [float("-inf"), None]

    def cached():
        now = tick()
        if now - state[0] >= seconds:
            state[0], state[1] = now, read()
        return state[1]

    return cached


def quarter_source(clock: Clock, pinned: int | None = None, tick: Callable[[], float] | None = None
                   ) -> Callable[[], int]:
    """The current quarter.  With `tick` (time.monotonic in the server) the clock is read
    at most every 50 ms instead of on every request: datetime.now(zone) costs more than
    the rest of the quarter logic, and a quarter boundary is seen at most 50 ms late."""
    if pinned is not None:
        return lambda: pinned
    read = lambda: quarter_of(clock())  # noqa: E731
    return read if tick is None else _every(read, tick)


def hour_of(moment: dt.datetime) -> str:
    """The local hour an event belongs to, as `banners export --hour` names it."""
    return moment.strftime("%Y-%m-%dT%H")


class Hour(str):
    """An hour's name (``2026-11-28T23``, what the keys hold) that knows its end as
    unix time: the pick script enters it in the registry exactly.  `hour_stamp(now)`
    makes one; a plain str works too (the registry then gets an upper bound)."""

    end: int

    def __new__(cls, name: str, end: int):
        self = super().__new__(cls, name)
        self.end = end
        return self


def hour_end(moment: dt.datetime) -> int:
    """The end of `moment`'s local hour as unix time (exact in zones offset by 30 or 45
    minutes too: counted from the moment, not from a UTC hour)."""
    ts = moment.timestamp()
    return int(ts - (moment.minute * 60 + moment.second + moment.microsecond / 1e6)) + 3600


def hour_stamp(moment: dt.datetime) -> Hour:
    return Hour(hour_of(moment), hour_end(moment))


def hour_source(clock: Clock, tick: Callable[[], float] | None = None) -> Callable[[], str]:
    """The current local hour (`2026-11-28T23`, an Hour that knows its end), read like
    the quarter: impressions are counted per hour and quarter, and the pick enters the
    hour's exact end in the registry (what `banners export` asks: is it over?)."""
    read = lambda: hour_stamp(clock())  # noqa: E731
    return read if tick is None else _every(read, tick)
