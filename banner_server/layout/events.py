"""What the service records after a banner was shown (SPEC §7): clicks and conversions,
and an hour of everything recorded read back (and removed) for `banners export`.

Layout in layout/keys.py; the scripts in layout/lua/.  Every call touches ONE hash slot, with every key in
KEYS, so it runs on a Redis Cluster as on one Redis:

* a click takes its id from the control slot (INCR click_seq, with the layout's G
  read in the same call), then writes its record and its line in the hour's index in
  the group of its id (one script: both or neither);
* a conversion reads its click (the click id's group), then one script in the
  conversion id's group checks the conversion (SET NX semantics: the first one wins,
  atomically) and writes it with its line in the hour's index.

The hour is the server's local hour (``2026-11-28T23``) and the quarter its minute's
(clock.quarter_of), from the `now` the caller passes (an aware datetime in the
server's time zone, from clock.system_clock).  A conversion is filed under its
click's quarter, in the index of the hour it was recorded: the loader accepts a
conversion only with its click in the same quarter's files.

Impressions are counted by the pick script (per group, hour and quarter); this module
only reads them back.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from .catalog import layout_groups
from ..clock import hour_of, quarter_of
from .keys import Keys
from .scripts import NEXT_CLICK, RECORD_CLICK, RECORD_CONVERSION, bind

log = logging.getLogger("banner_server")

CLICK_TTL = 30 * 86400  # a conversion may name its click this long (SPEC §7)
CONVERSION_TTL = CLICK_TTL  # a repeated postback is recognised as long as its click could be named
DEFAULT_KEEP_EVENTS = 48 * 3600  # config.KEEP_EVENTS's default; what a bare EventStore keeps


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class Click:
    campaign: int
    banner: int
    served_at: int
    clicked_at: int


@dataclass
class ConversionResult:
    outcome: str  # 'created' | 'same' | 'conflict' | 'unknown_click'
    recorded: str | None = None  # "click_id revenue" kept for the conversion id (same/conflict/created)


@dataclass
class HourEvents:
    """Everything recorded in one local hour, per quarter (rows as the export writes
    them): impressions (campaign, banner, count), clicks (click_id, banner, campaign),
    conversions (conversion_id, click_id, revenue text).  `unreadable` counts records
    that did not parse (skipped, logged)."""

    hour: str
    impressions: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)
    clicks: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)
    conversions: dict[int, list[tuple[int, int, str]]] = field(default_factory=dict)
    unreadable: int = 0

    @property
    def empty(self) -> bool:
        return not (self.impressions or self.clicks or self.conversions)

    def counts(self) -> dict[int, tuple[int, int, int]]:
        """quarter -> (impressions, clicks, conversions)."""
        quarters = sorted(set(self.impressions) | set(self.clicks) | set(self.conversions))
        return {q: (sum(n for _, _, n in self.impressions.get(q, ())), len(self.clicks.get(q, ())),
                    len(self.conversions.get(q, ()))) for q in quarters}


class EventStore:
    """Records clicks and conversions in Redis and reads an hour of events back.

    `r` is a redis-py client (one Redis, a RedisCluster, or Sentinel's master).  The
    number of groups G is the layout's (`{t}:groups`, what publishing stored), read on
    every call: clicks are not the hot path, and a worker that never saw a load still
    files ids where the others look for them.
    """

    def __init__(self, r, keys: Keys, keep_events: int = DEFAULT_KEEP_EVENTS, click_ttl: int = CLICK_TTL):
        self.r = r
        self.keys = keys
        self.keep_events = int(keep_events)
        self.click_ttl = int(click_ttl)
        self._scripts = {s.name: bind(r, s) for s in (NEXT_CLICK, RECORD_CLICK, RECORD_CONVERSION)}

    def _script(self, name: str):
        return self._scripts[name]

    # -- the layout ----------------------------------------------------------------
    def _layout(self, stored) -> Keys:
        return self.keys.with_groups(layout_groups(self.r, self.keys, stored or b""))

    def layout(self) -> Keys:
        """Keys with the layout's G."""
        return self._layout(self.r.get(self.keys.groups_key))

    # -- recording -----------------------------------------------------------------
    def record_click(self, campaign: int, banner: int, served_at: int, now: dt.datetime) -> int:
        """Records a click on `banner` of `campaign` (shown at unix time `served_at`)
        at `now`; returns its new click_id.  Raises redis errors."""
        click_id, stored = self._script("next_click")(keys=[self.keys.click_seq, self.keys.groups_key])
        click_id = int(click_id)
        keys = self._layout(stored)
        group = keys.id_group(click_id)
        clicked_at = int(now.timestamp())
        self._script("record_click")(
            keys=[keys.click(click_id), keys.clicks_by_hour(hour_of(now), group)],
            args=[f"{campaign} {banner} {served_at} {clicked_at}", self.click_ttl, click_id,
                  f"{campaign} {banner} {quarter_of(now)}", self.keep_events])
        return click_id

    def click(self, click_id: int, keys: Keys | None = None) -> Click | None:
        """The click recorded under `click_id`, None when unknown or expired."""
        raw = self.r.get((keys or self.layout()).click(click_id))
        if raw is None:
            return None
        campaign, banner, served_at, clicked_at = map(int, _text(raw).split())
        return Click(campaign, banner, served_at, clicked_at)

    def record_conversion(self, click_id: int, conversion_id: int, revenue: str, now: dt.datetime
                          ) -> ConversionResult:
        """Records conversion `conversion_id` of click `click_id` with `revenue` (the
        canonical decimal text, tracking.parse_revenue) at `now`.

        'created': recorded now; 'same': recorded before with the same click and
        revenue (counted once); 'conflict': recorded before with other values (kept);
        'unknown_click': no such click, or it expired.  Raises redis errors."""
        keys = self.layout()
        click = self.click(click_id, keys)
        record = f"{click_id} {revenue}"
        line = ""
        if click is not None:
            # The click's quarter, read from its time in the server's zone: the export
            # files the conversion beside its click (the loader's orphan rule).
            clicked = dt.datetime.fromtimestamp(click.clicked_at, now.tzinfo)
            line = f"{click_id} {revenue} {quarter_of(clicked)}"
        group = keys.id_group(conversion_id)
        outcome, recorded = self._script("record_conversion")(
            keys=[keys.conversion(conversion_id), keys.conversions_by_hour(hour_of(now), group)],
            args=[record, line, CONVERSION_TTL, conversion_id, self.keep_events])
        return ConversionResult(_text(outcome), _text(recorded) if recorded else None)

    # -- reading an hour back (banners export) ---------------------------------------
    @staticmethod
    def _hour_keys(keys: Keys, hour: str, group: int) -> tuple[list[tuple[int, str]], str, str]:
        """Group `group`'s keys of the hour: (quarter, counter hash) of every shard, and
        the click and conversion indexes."""
        mine = keys.group_prefixes[group]
        imps = [(q, key) for q in (1, 2, 3, 4) for key in keys.all_impressions(hour, q) if key.startswith(mine)]
        return imps, keys.clicks_by_hour(hour, group), keys.conversions_by_hour(hour, group)

    def read_hour(self, hour: str) -> HourEvents:
        """Every impression, click and conversion recorded in local hour `hour`, per
        quarter, summed over the groups.  One pipeline per group (one slot each)."""
        keys = self.layout()
        events = HourEvents(hour)
        impressions: dict[tuple[int, int, int], int] = {}
        for group in range(keys.groups):
            imp_keys, clicks_key, convs_key = self._hour_keys(keys, hour, group)
            pipe = self.r.pipeline(transaction=False)
            for _, key in imp_keys:
                pipe.hgetall(key)
            pipe.hgetall(clicks_key)
            pipe.hgetall(convs_key)
            *imps, clicks, convs = pipe.execute()
            for (quarter, _), counts in zip(imp_keys, imps):
                for fld, count in counts.items():
                    try:
                        campaign, banner = map(int, _text(fld).split(":"))
                        n = int(count)
                    except ValueError:
                        events.unreadable += 1
                        continue
                    if n > 0:
                        impressions[quarter, campaign, banner] = impressions.get((quarter, campaign, banner), 0) + n
            for fld, value in clicks.items():
                try:
                    click_id = int(fld)
                    campaign, banner, quarter = map(int, _text(value).split())
                    if quarter not in (1, 2, 3, 4):
                        raise ValueError(quarter)
                except ValueError:
                    events.unreadable += 1
                    continue
                events.clicks.setdefault(quarter, []).append((click_id, banner, campaign))
            for fld, value in convs.items():
                try:
                    conversion_id = int(fld)
                    click_text, revenue, quarter_text = _text(value).split()
                    click_id, quarter = int(click_text), int(quarter_text)
                    if quarter not in (1, 2, 3, 4):
                        raise ValueError(quarter)
                except ValueError:
                    events.unreadable += 1
                    continue
                events.conversions.setdefault(quarter, []).append((conversion_id, click_id, revenue))
        for (quarter, campaign, banner), n in impressions.items():
            events.impressions.setdefault(quarter, []).append((campaign, banner, n))
        if events.unreadable:
            log.warning("hour %s: %d recorded event(s) could not be read and were skipped", hour, events.unreadable)
        return events

    def delete_hour(self, hour: str) -> None:
        """Removes the hour's impression counters and click/conversion indexes (the
        click and conversion records stay, for postbacks and their idempotence)."""
        keys = self.layout()
        for group in range(keys.groups):
            imp_keys, clicks_key, convs_key = self._hour_keys(keys, hour, group)
            self.r.delete(*(key for _, key in imp_keys), clicks_key, convs_key)  # one group: one slot
