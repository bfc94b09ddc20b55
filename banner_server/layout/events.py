"""What the service records after a banner was shown (SPEC §7): clicks and conversions,
and an hour of everything recorded read back for `banners export` (a read: nothing is
removed).  The retention that bounds it (`prune`) and the readers of recent counters
are in layout/retention.py.

Layout in layout/keys.py; the scripts in layout/lua/.  Every call touches ONE hash slot, with every key in
KEYS, so it runs on a Redis Cluster as on one Redis:

* a click's id is drawn here, time-derived and random (`new_click_id`: unix ms << 20
  | 20 random bits, made to fall in the group of its token), so ids never repeat even
  after Redis lost its data; one script in that group checks the token (a replayed
  click URL answers the click id it got the first time, nothing new is recorded),
  writes the click's record in the hour's hash with HSETNX (an id taken already is
  drawn again) and enters the hours in the group's registry;
* a conversion reads its click (the click id's group; the id's time names the hour
  hash it is in), then one script in the conversion id's group checks the conversion
  (SET NX semantics: the first one wins, atomically) and writes it with its line in
  the hour's index.

Nothing recorded has a TTL: under `volatile-lru` only visitor keys are evicted.  Each
group's registry (`{g}:hours`: hour -> its end, unix time) lists the hours with
something recorded; what reads it (the hours there are, the recent counters) and the
retention that removes old hours are layout/retention.py's, EventStore's base class.

The hour is the server's local hour (``2026-11-28T23``) and the quarter its minute's
(clock.quarter_of), from the `now` the caller passes (an aware datetime in the
server's time zone, from clock.system_clock).  A conversion is filed under its
click's quarter, in the index of the hour it was recorded: the loader accepts a
conversion only with its click in the same quarter's files.  Whether an hour is over
is the registry's end of it (unix time), whatever zone the caller reads clocks in.

Impressions are counted by the pick script (per group, hour and quarter); this module
only reads them back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
from dataclasses import dataclass, field

from .catalog import layout_groups
from ..clock import Hour, hour_end, hour_of, hour_stamp, quarter_of  # noqa: F401  (Hour: re-exported)
from .keys import IMPRESSION_SHARDS, Keys
from .retention import CLICK_TTL, DEFAULT_KEEP_EVENTS, RecordedHours, _text
from .scripts import RECORD_CLICK, RECORD_CONVERSION, bind

log = logging.getLogger("banner_server")

ID_RANDOM_BITS = 20
_ID_LOW = (1 << ID_RANDOM_BITS) - 1
_ID_DRAWS = 8  # an id taken already (same ms, same random bits) is drawn again, so often at most
OTHER_VISITOR = "o"  # a click record's flag: clicked by another visitor than the banner was shown to
CLICK_RATE_TTL = 120  # the click-rate counter of a minute outlives it (web/quality.py's CLICK_RATE_TTL)


def new_click_id(ms: int, group: int, groups: int, rng: random.Random) -> int:
    """unix ms << 20 | 20 random bits, the low bits moved so that id % groups == group.
    Below 2**63 until the year 2248; never repeats after Redis lost its data (its
    counter would: the issue's `kill -9` handed out 1-5 again to another campaign)."""
    ident = (ms << ID_RANDOM_BITS) | rng.getrandbits(ID_RANDOM_BITS)
    ident -= (ident % groups - group) % groups
    if ident & ~_ID_LOW != ms << ID_RANDOM_BITS:  # moved below this ms: up into it
        ident += groups
    return ident


def click_time(click_id: int) -> float:
    """The unix time a click id was drawn at (its high bits)."""
    return (click_id >> ID_RANDOM_BITS) / 1000


def token_digest(token: str) -> str:
    """What the replay index keeps of a click token: 96 bits of its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()[:24]


@dataclass
class Click:
    campaign: int
    banner: int
    served_at: int
    clicked_at: int
    other_visitor: bool = False
    reason: str | None = None  # why the click is invalid (web/quality.py), None: valid


class RecordedClick(int):
    """A click's id (an int), whether its token was clicked before (`replayed`: this is
    the id it got then, nothing new was recorded) and why it is invalid (`reason`,
    None for a valid click)."""

    replayed: bool
    reason: str | None

    def __new__(cls, click_id: int, replayed: bool = False, reason: str | None = None):
        self = super().__new__(cls, click_id)
        self.replayed = replayed
        self.reason = reason
        return self

    @property
    def click_id(self) -> int:
        return int(self)


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
    # The invalid ones (web/quality.py), each with its reason, never in the lists above:
    # impressions (campaign, banner, reason, count), clicks (click_id, banner, campaign,
    # reason; a replay writes no record, it is only counted: invalid_counts), and the
    # conversions of invalid clicks (conversion_id, click_id, revenue, the click's reason).
    invalid_impressions: dict[int, list[tuple[int, int, str, int]]] = field(default_factory=dict)
    invalid_clicks: dict[int, list[tuple[int, int, int, str]]] = field(default_factory=dict)
    invalid_conversions: dict[int, list[tuple[int, int, str, str]]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.impressions or self.clicks or self.conversions or self.invalid_impressions
                    or self.invalid_clicks or self.invalid_conversions)

    @property
    def valid_empty(self) -> bool:
        return not (self.impressions or self.clicks or self.conversions)

    def counts(self) -> dict[int, tuple[int, int, int]]:
        """quarter -> (impressions, clicks, conversions)."""
        quarters = sorted(set(self.impressions) | set(self.clicks) | set(self.conversions))
        return {q: (sum(n for _, _, n in self.impressions.get(q, ())), len(self.clicks.get(q, ())),
                    len(self.conversions.get(q, ()))) for q in quarters}


class EventStore(RecordedHours):
    """Records clicks and conversions in Redis, reads an hour of events back, and
    removes what is older than its retention (RecordedHours, layout/retention.py).

    `r` is a redis-py client (one Redis, a RedisCluster, or Sentinel's master).  The
    number of groups G is the layout's (`{t}:groups`, what publishing stored), read on
    every call: clicks are not the hot path, and a worker that never saw a load still
    files ids where the others look for them.
    """

    def __init__(self, r, keys: Keys, keep_events: int = DEFAULT_KEEP_EVENTS, click_ttl: int = CLICK_TTL,
                 rng: random.Random | None = None):
        self.r = r
        self.keys = keys
        self.keep_events = int(keep_events)
        self.click_ttl = int(click_ttl)
        self.rng = rng or random.SystemRandom()
        self._next_prune = float("-inf")  # maybe_prune: when this store may try for the lease again
        self._scripts = {s.name: bind(r, s) for s in (RECORD_CLICK, RECORD_CONVERSION)}

    def _script(self, name: str):
        return self._scripts[name]

    # -- the layout ----------------------------------------------------------------
    def _layout(self, stored) -> Keys:
        return self.keys.with_groups(layout_groups(self.r, self.keys, stored or b""))

    def layout(self) -> Keys:
        """Keys with the layout's G."""
        return self._layout(self.r.get(self.keys.groups_key))

    # -- recording -----------------------------------------------------------------
    def record_click(self, campaign: int, banner: int, served_at: int, now: dt.datetime,
                     token: str | None = None, other_visitor: bool = False, *, visitor: str | None = None,
                     request_reason: str | None = None, click_reason: str | None = None,
                     max_per_minute: int = 0, classified: bool = False) -> RecordedClick:
        """Records a click on `banner` of `campaign` (shown at unix time `served_at`)
        at `now`, once per `token` (the click URL's): a token clicked before answers
        the click_id it got then, `replayed`, and records nothing but its count as an
        invalid `replay`.  `other_visitor`: the token was signed for another visitor
        (kept in the record's flags).

        Traffic quality (web/quality.py): `request_reason` (head, prefetch, bot, ...)
        comes before a replay, `click_reason` (other_visitor, no_impression, too_fast)
        after it; `visitor` (the one the token was shown to) files the click in that
        visitor's group, where the same call counts its clicks of this minute
        (Keys.click_rate): above `max_per_minute` (0: no cap) it is `click_rate`.  An
        invalid click is recorded with its reason (audit) and counted by reason; with
        `classified` a replay is counted too (reason `replay`).  Raises redis errors."""
        keys = self.layout()
        digest = token_digest(token) if token else ""
        if visitor is not None:
            group = keys.group_of(visitor)  # the token's replay index is the visitor's group too
        else:
            group = keys.token_group(digest) if digest else self.rng.randrange(keys.groups)
        hour = hour_of(now)
        served = dt.datetime.fromtimestamp(served_at, now.tzinfo)
        clicked_at = int(now.timestamp())
        ms = int(now.timestamp() * 1000)
        flags = OTHER_VISITOR if other_visitor else "-"
        tail = f" {quarter_of(now)} {served_at} {clicked_at} {flags}"
        record_keys = [keys.click_tokens(hour_of(served), group), keys.clicks_by_hour(hour, group),
                       keys.hours(group), keys.invalid_clicks(hour, group)]
        if visitor is not None:
            record_keys.append(keys.click_rate(visitor, group, now.timestamp()))
        for _ in range(_ID_DRAWS):
            click_id = new_click_id(ms, group, keys.groups, self.rng)
            outcome, got, reason = self._script("record_click")(
                keys=record_keys,
                args=[digest, click_id, f"{campaign} {banner}{tail}", hour, hour_end(now),
                      hour_of(served), hour_end(served), request_reason or "", click_reason or "",
                      int(max_per_minute), CLICK_RATE_TTL,
                      f"{quarter_of(now)}:{campaign}:{banner}" if classified else ""])
            outcome = _text(outcome)
            if outcome != "taken":
                return RecordedClick(int(got), replayed=outcome == "replayed", reason=_text(reason) or None)
        raise RuntimeError(f"no free click id in {_ID_DRAWS} draws at {ms} ms")  # 2**20 ids a ms: not met

    def click(self, click_id: int, keys: Keys | None = None, tz: dt.tzinfo | None = None) -> Click | None:
        """The click recorded under `click_id` (its time names the hour's hash it is in,
        in the server's zone `tz`), None when unknown or older than its retention."""
        keys = keys or self.layout()
        if not 0 <= click_id < 1 << 63:
            return None
        try:
            when = dt.datetime.fromtimestamp(click_time(click_id), tz or dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
        raw = self.r.hget(keys.clicks_by_hour(hour_of(when), keys.id_group(click_id)), str(click_id))
        if raw is None:
            return self._legacy_click(keys, click_id)
        try:
            campaign, banner, _, served_at, clicked_at, flags, *reason = _text(raw).split()
            return Click(int(campaign), int(banner), int(served_at), int(clicked_at), OTHER_VISITOR in flags,
                         reason[0] if reason else None)
        except ValueError:
            log.warning("click %d: unreadable record %r", click_id, raw)
            return None

    def _legacy_click(self, keys: Keys, click_id: int) -> Click | None:
        """A click recorded before click records moved into the hours' hashes (a key
        per click, "campaign banner served_at clicked_at", with its 30-day TTL): its
        postbacks keep working until it expires.  Remove 30 days after the upgrade."""
        raw = self.r.get(keys.legacy_click(click_id))
        if raw is None:
            return None
        try:
            campaign, banner, served_at, clicked_at = map(int, _text(raw).split())
        except ValueError:
            return None
        return Click(campaign, banner, served_at, clicked_at)

    def record_conversion(self, click_id: int, conversion_id: int, revenue: str, now: dt.datetime
                          ) -> ConversionResult:
        """Records conversion `conversion_id` of click `click_id` with `revenue` (the
        canonical decimal text, tracking.parse_revenue) at `now`.

        'created': recorded now; 'same': recorded before with the same click and
        revenue (counted once); 'conflict': recorded before with other values (kept);
        'unknown_click': no such click, or it expired.  Raises redis errors."""
        keys = self.layout()
        click = self.click(click_id, keys, now.tzinfo)
        record = f"{click_id} {revenue}"
        line = ""
        if click is not None:
            # The click's quarter, read from its time in the server's zone: the export
            # files the conversion beside its click (the loader's orphan rule).
            clicked = dt.datetime.fromtimestamp(click.clicked_at, now.tzinfo)
            line = f"{click_id} {revenue} {quarter_of(clicked)}"
        group = keys.id_group(conversion_id)
        hour = hour_of(now)
        outcome, recorded = self._script("record_conversion")(
            keys=[keys.conversion(conversion_id), keys.conversions_by_hour(hour, group), keys.hours(group)],
            args=[record, line, hour, conversion_id, hour_end(now)])
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
        quarter, summed over the groups, the valid ones apart from the invalid ones
        (with their reason).  One pipeline per group (one slot each)."""
        keys = self.layout()
        events = HourEvents(hour)
        impressions: dict[tuple[int, int, int], int] = {}
        invalid: dict[tuple[int, int, int, str], int] = {}
        invalid_click_reasons: dict[int, str] = {}
        for group in range(keys.groups):
            imp_keys, clicks_key, convs_key = self._hour_keys(keys, hour, group)
            mine = keys.group_prefixes[group]
            inv_keys = [(q, f"{mine}inv:{hour}:{q}:{s}") for q in (1, 2, 3, 4) for s in range(IMPRESSION_SHARDS)]
            pipe = self.r.pipeline(transaction=False)
            for _, key in imp_keys + inv_keys:
                pipe.hgetall(key)
            pipe.hgetall(clicks_key)
            pipe.hgetall(convs_key)
            *imps, clicks, convs = pipe.execute()
            for (quarter, _), counts in zip(imp_keys + inv_keys, imps):
                for fld, count in counts.items():
                    try:
                        campaign, banner, *reason = _text(fld).split(":")
                        campaign, banner, n = int(campaign), int(banner), int(count)
                        if len(reason) > 1:
                            raise ValueError(reason)
                    except ValueError:
                        events.unreadable += 1
                        continue
                    if n <= 0:
                        continue
                    if reason:
                        at = (quarter, campaign, banner, reason[0])
                        invalid[at] = invalid.get(at, 0) + n
                    else:
                        impressions[quarter, campaign, banner] = impressions.get((quarter, campaign, banner), 0) + n
            for fld, value in clicks.items():
                try:
                    click_id = int(fld)
                    parts = _text(value).split()
                    campaign, banner, quarter = map(int, parts[:3])
                    if quarter not in (1, 2, 3, 4):
                        raise ValueError(quarter)
                except ValueError:
                    events.unreadable += 1
                    continue
                if len(parts) > 6:  # an invalid click: kept for audit, never exported as valid
                    invalid_click_reasons[click_id] = parts[6]
                    events.invalid_clicks.setdefault(quarter, []).append((click_id, banner, campaign, parts[6]))
                else:
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
        for (quarter, campaign, banner, reason), n in invalid.items():
            events.invalid_impressions.setdefault(quarter, []).append((campaign, banner, reason, n))
        self._split_conversions(keys, events, invalid_click_reasons)
        if events.unreadable:
            log.warning("hour %s: %d recorded event(s) could not be read and were skipped", hour, events.unreadable)
        return events


    def _split_conversions(self, keys: Keys, events: HourEvents, reasons: dict[int, str]) -> None:
        """Moves the conversions of invalid clicks to `invalid_conversions` (the loader
        would reject them as orphans without their click).  A click of another hour is
        looked up by its id (one HGET each, pipelined: conversions are few)."""
        valid = {c for rows in events.clicks.values() for c, _, _ in rows}
        elsewhere = sorted({c for rows in events.conversions.values() for _, c, _ in rows
                            if c not in valid and c not in reasons})
        for click_id in elsewhere:
            try:
                found = self.click(click_id, keys)
            except ValueError:
                found = None
            if found is not None and found.reason:
                reasons[click_id] = found.reason
        if not reasons:
            return
        for quarter, rows in list(events.conversions.items()):
            kept = [row for row in rows if row[1] not in reasons]
            for conversion_id, click_id, revenue in rows:
                if click_id in reasons:
                    events.invalid_conversions.setdefault(quarter, []).append(
                        (conversion_id, click_id, revenue, reasons[click_id]))
            if kept:
                events.conversions[quarter] = kept
            else:
                del events.conversions[quarter]

    def evicted_keys(self) -> int:
        """Redis' evicted_keys (INFO stats; summed over a cluster's nodes): only visitor
        keys can be evicted (nothing recorded has a TTL), so this counts the visitors
        forgotten at the memory bound (for /metrics)."""
        info = self.r.info("stats")
        if "evicted_keys" in info:
            return int(info["evicted_keys"])
        return sum(int(node.get("evicted_keys", 0)) for node in info.values() if isinstance(node, dict))
