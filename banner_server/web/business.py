"""The business numbers of the dashboard: impressions, clicks, conversions and revenue
per (quarter, campaign, banner) and hour, summed from the recorded events, with valid
against invalid traffic by reason.  No HTML here (dashboard.py renders them).

Cost: the events are read by `RecordedEvents` (the ONE place that reads them: switch
it to the event readers of layout/events.py when they land) at most once a minute per
worker, past hours once (they no longer change).  Valid against invalid traffic by
reason (`traffic_quality`) is read with the current hour; frequency-capped requests are
counted per server in /metrics only (`frequency_capped` stays None).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Callable

from ..clients.errors import REDIS_ERRORS
from ..clock import hour_of

log = logging.getLogger("banner_server")

HOURS = 48
REFRESH = 60.0  # seconds the events and the rendered pages are reused for
MAX_ATTRIBUTION_LOOKUPS = 1000  # conversions of clicks older than the window: looked up, this many a refresh


@dataclass
class Counts:
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    revenue: Decimal = Decimal(0)

    def add(self, other: "Counts") -> None:
        self.impressions += other.impressions
        self.clicks += other.clicks
        self.conversions += other.conversions
        self.revenue += other.revenue

    def as_dict(self) -> dict:
        imp, clk = self.impressions, self.clicks
        return {
            "impressions": imp, "clicks": clk, "conversions": self.conversions,
            "revenue": float(self.revenue),
            "ctr": clk / imp if imp else None,
            "conversion_rate": self.conversions / clk if clk else None,
            "ecpm": float(self.revenue) * 1000 / imp if imp else None,
        }


@dataclass
class HourSummary:
    """One local hour: (quarter, campaign, banner) -> counts."""
    hour: str
    by_banner: dict[tuple[int, int, int], Counts] = field(default_factory=dict)
    unattributed: int = 0  # conversions whose click could not be found


@dataclass
class Business:
    hours: list[str]  # oldest first
    summaries: dict[str, HourSummary]
    # Hooks for the work that measures them (None: shown as "—").
    traffic_quality: dict | None = None  # {"valid": n, "invalid": {reason: n}}
    frequency_capped: int | None = None

    # Sums over every recorded (quarter, campaign, banner) of 48 h are made once per
    # Business (RecordedEvents hands the same one out until it reads again, at most once
    # a minute) and indexed by campaign: summed per page, a list page of the 100k set
    # with an hour of wrk's impressions took ~100 ms of the worker's only event loop,
    # and 6 operators took campaign answers' p99 from 76 ms to 1.4 s.
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def _by_campaign(self) -> dict[int, dict[tuple[int, int, int], Counts]]:
        index = self._memo.get("by_campaign")
        if index is None:
            index = {}
            for s in self.summaries.values():
                for key, counts in s.by_banner.items():
                    index.setdefault(key[1], {}).setdefault(key, Counts()).add(counts)
            self._memo["by_campaign"] = index
        return index

    def banner_totals(self, quarter: int | None = None, campaign: int | None = None
                      ) -> dict[tuple[int, int, int], Counts]:
        if campaign is not None:
            rows = self._by_campaign().get(campaign, {})
            return {k: v for k, v in rows.items() if quarter is None or k[0] == quarter}
        out: dict[tuple[int, int, int], Counts] = {}
        for s in self.summaries.values():
            for key, counts in s.by_banner.items():
                if quarter is None or key[0] == quarter:
                    out.setdefault(key, Counts()).add(counts)
        return out

    def campaign_totals(self, quarter: int) -> dict[int, Counts]:
        key = ("campaign_totals", quarter)
        if key not in self._memo:
            out: dict[int, Counts] = {}
            for s in self.summaries.values():
                for (q, c, _), counts in s.by_banner.items():
                    if q == quarter:
                        out.setdefault(c, Counts()).add(counts)
            self._memo[key] = out
        return self._memo[key]

    def per_hour(self, campaign: int | None = None, quarter: int | None = None) -> list[Counts]:
        key = ("per_hour", quarter)
        by_hour = self._memo.get(key)
        if by_hour is None:
            # hour -> campaign -> counts (None: all campaigns), one pass over the hours
            by_hour = {}
            for hour in self.hours:
                s = self.summaries.get(hour)
                per: dict = {None: Counts()}
                if s:
                    for (q, c, _), counts in s.by_banner.items():
                        if quarter is None or q == quarter:
                            per.setdefault(c, Counts()).add(counts)
                            per[None].add(counts)
                by_hour[hour] = per
            self._memo[key] = by_hour
        return [by_hour[hour].get(campaign, Counts()) for hour in self.hours]


def _summarise(events, hour: str, clicks_seen: dict[int, tuple[int, int, int]]) -> HourSummary:
    """One hour of EventStore.read_hour, attributed to (quarter, campaign, banner)."""
    read = events.read_hour(hour)
    out = HourSummary(hour)
    for q, rows in read.impressions.items():
        for campaign, banner, n in rows:
            out.by_banner.setdefault((q, campaign, banner), Counts()).impressions += n
    for q, rows in read.clicks.items():
        for click_id, banner, campaign in rows:
            clicks_seen[click_id] = (q, campaign, banner)
            out.by_banner.setdefault((q, campaign, banner), Counts()).clicks += 1
    lookups = 0
    for q, rows in read.conversions.items():
        for _, click_id, revenue in rows:
            where = clicks_seen.get(click_id)
            if where is None and lookups < MAX_ATTRIBUTION_LOOKUPS:
                lookups += 1
                click = events.click(click_id)
                if click is not None:
                    where = clicks_seen[click_id] = (q, click.campaign, click.banner)
            if where is None:
                out.unattributed += 1
                continue
            counts = out.by_banner.setdefault(where, Counts())
            counts.conversions += 1
            try:
                counts.revenue += Decimal(revenue)
            except InvalidOperation:
                pass
    return out


class RecordedEvents:
    """The last HOURS hours of recorded events, per worker: an hour before the current
    one is read once (nothing is filed under a past hour: a late conversion goes to the
    hour it arrives in), the current hour at most once per REFRESH seconds.

    This is the one place that reads events for the dashboard: today it sums
    EventStore.read_hour; switch it to the event readers of layout/events.py when they
    land (impressions per hour/quarter/campaign/banner) and nothing else changes."""

    def __init__(self, events, clock: Callable[[], dt.datetime], monotonic=time.monotonic):
        self.events = events
        self.clock = clock
        self.monotonic = monotonic
        self._past: dict[str, HourSummary] = {}
        self._clicks: dict[int, tuple[int, int, int]] = {}
        self._current: tuple[float, HourSummary] | None = None
        self._business: tuple[tuple, Business] | None = None
        self._invalid: dict | None = None  # EventStore.invalid_counts, read with the current hour
        self._failed_at: float | None = None
        self.error: str | None = None

    def __call__(self) -> Business:
        now = self.clock()
        hours = [hour_of(now - dt.timedelta(hours=h)) for h in range(HOURS - 1, -1, -1)]
        if self.events is None:
            return Business(hours, {})
        current = hours[-1]
        # After a failed read (Redis away, or an hour too big for the 50 ms timeout),
        # show what was read and try again a REFRESH later: retried on every page, each
        # dashboard request paid the timeouts again on the worker's only event loop.
        if self._failed_at is not None and self.monotonic() - self._failed_at < REFRESH:
            return self._answer(hours, current)
        try:
            for hour in hours[:-1]:
                if hour not in self._past:
                    self._past[hour] = _summarise(self.events, hour, self._clicks)
            for hour in list(self._past):
                if hour not in hours:
                    del self._past[hour]
            if len(self._clicks) > 1_000_000:  # bounded: older clicks are looked up again
                self._clicks.clear()
            if (self._current is None or self._current[1].hour != current
                    or self.monotonic() - self._current[0] >= REFRESH):
                self._current = (self.monotonic(), _summarise(self.events, current, self._clicks))
                # Invalid traffic by reason over the same hours, read as often as the
                # current hour (its counters live beside the valid ones, never exported).
                reader = getattr(self.events, "invalid_counts", None)
                self._invalid = reader(now, HOURS) if reader else None
            self.error = None
            self._failed_at = None
        except REDIS_ERRORS as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self._failed_at = self.monotonic()
            log.warning("dashboard: recorded events unreadable (%s); showing what was read", self.error)
        return self._answer(hours, current)

    def _answer(self, hours: list[str], current: str) -> Business:
        summaries = dict(self._past)
        if self._current is not None and self._current[1].hour == current:
            summaries[current] = self._current[1]
        # The same Business (and its sums) until something was read again.
        state = (tuple(hours), tuple(id(v) for v in summaries.values()), id(self._invalid))
        if self._business is None or self._business[0] != state:
            self._business = (state, Business(hours, summaries, _quality(summaries, self._invalid)))
        return self._business[1]


def _quality(summaries: dict[str, HourSummary], invalid: dict | None) -> dict | None:
    """{"valid": impressions, "invalid": {reason: impressions}, "invalid_clicks": {reason: clicks}}
    of the hours shown, None when the invalid counts could not be read."""
    if invalid is None:
        return None
    by_reason: dict[str, dict[str, int]] = {"impressions": {}, "clicks": {}}
    for kind in by_reason:
        for (_, reason), n in invalid.get(kind, {}).items():
            by_reason[kind][reason] = by_reason[kind].get(reason, 0) + n
    valid = sum(c.impressions for s in summaries.values() for c in s.by_banner.values())
    return {"valid": valid, "invalid": dict(sorted(by_reason["impressions"].items())),
            "invalid_clicks": dict(sorted(by_reason["clicks"].items()))}
