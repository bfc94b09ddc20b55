"""The groups' registries of recorded hours (`{g}:hours`: hour -> its end, unix time)
and what goes through them: which hours there are and when each ends (the servers'
own hours, whatever the caller's zone), the readers of recent counters (the
dashboard's served counts and invalid traffic over the last hours), and the
retention that removes old hours.  Nothing recorded has a TTL: `prune(now)` removes,
per retention tier, what is old enough: impression counters --keep-events after
their hour, token indexes 25 h after (a token lives 24 h), click records, conversion
indexes and conversion records 30 days after.  `maybe_prune(now)` runs it at most
once per period over the whole fleet (a lease).

RecordedHours is EventStore's base class (layout/events.py, which records what these
read): it uses the store's `r`, `keys`, `layout()`, `keep_events`, `click_ttl` and
`_next_prune`.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets

from .keys import IMPRESSION_SHARDS, Keys

log = logging.getLogger("banner_server")

CLICK_TTL = 30 * 86400  # a conversion may name its click this long (SPEC §7): its record is kept so long
CONVERSION_TTL = CLICK_TTL  # a repeated postback is recognised as long as its click could be named
TOKEN_KEEP = 25 * 3600  # a click token lives 24 h (tokens.TOKEN_TTL); its replay record an hour more
DEFAULT_KEEP_EVENTS = 48 * 3600  # config.KEEP_EVENTS's default; what a bare EventStore keeps
PRUNE_EVERY = 600  # seconds between two prunes of the fleet (the lease's life)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RecordedHours:
    """The registry's readers and the retention of an EventStore (see the module)."""

    def _hours_since(self, keys: Keys, since: float):
        """(group, its key prefix, the hours it recorded that end after `since`) of every
        group with any: what the readers of recent counters go through."""
        for group in range(keys.groups):
            recorded = [_text(m) for m in self.r.zrangebyscore(keys.hours(group), f"({since}", "+inf")]
            if recorded:
                yield group, keys.group_prefixes[group], recorded

    def invalid_counts(self, now: dt.datetime, hours: int = 24) -> dict[str, dict[tuple[int, str], int]]:
        """{"impressions": {(campaign, reason): n}, "clicks": {(campaign, reason): n}}:
        the invalid traffic recorded in the last `hours` hours (the running one
        included, as impressions_since), summed over quarters, groups and hosts: what
        the dashboard shows per campaign beside the valid counts."""
        keys = self.layout()
        since = now.timestamp() - (hours - 1) * 3600
        out: dict[str, dict[tuple[int, str], int]] = {"impressions": {}, "clicks": {}}
        for group, mine, recorded in self._hours_since(keys, since):
            pipe = self.r.pipeline(transaction=False)
            kinds = []
            for hour in recorded:
                for quarter in (1, 2, 3, 4):
                    for shard in range(IMPRESSION_SHARDS):
                        kinds.append("impressions")
                        pipe.hgetall(f"{mine}inv:{hour}:{quarter}:{shard}")
                kinds.append("clicks")
                pipe.hgetall(keys.invalid_clicks(hour, group))
            for kind, counts in zip(kinds, pipe.execute()):
                for fld, count in counts.items():
                    parts = _text(fld).split(":")
                    try:
                        # impressions: campaign:banner:reason; clicks: quarter:campaign:banner:reason
                        campaign = int(parts[0] if kind == "impressions" else parts[1])
                        n = int(count)
                    except (ValueError, IndexError):
                        continue
                    at = (campaign, parts[-1])
                    out[kind][at] = out[kind].get(at, 0) + n
        return out

    # -- which hours there are (the servers' own hours, whatever the caller's zone) ---
    def hour_ends(self) -> dict[str, int]:
        """Every hour with something recorded (not pruned yet) -> its end, unix time."""
        keys = self.layout()
        ends: dict[str, int] = {}
        for group in range(keys.groups):
            for member, score in self.r.zrange(keys.hours(group), 0, -1, withscores=True):
                hour = _text(member)
                ends[hour] = min(ends.get(hour, int(score)), int(score))
        return ends

    def hour_end(self, hour: str) -> int | None:
        """The end of recorded hour `hour` (unix time), None when nothing is recorded in
        it (or it was pruned).  The least over the groups: a pick that only knew the
        hour's name entered an upper bound, a click the exact end."""
        keys = self.layout()
        pipe = self.r.pipeline(transaction=False)
        for group in range(keys.groups):
            pipe.zscore(keys.hours(group), hour)
        scores = [s for s in pipe.execute() if s is not None]
        return int(min(scores)) if scores else None

    def hour_is_over(self, hour: str, now: dt.datetime) -> bool:
        """Whether recorded hour `hour` ended by `now` (compared as unix time: the
        caller's time zone does not matter).  False for an hour nothing is recorded in."""
        end = self.hour_end(hour)
        return end is not None and end <= now.timestamp()

    def closed_hours(self, now: dt.datetime) -> list[str]:
        """The recorded hours over by `now` (unix time, whatever its zone), oldest first."""
        limit = now.timestamp()
        return sorted(h for h, end in self.hour_ends().items() if end <= limit)

    # -- served counts (the dashboard) -----------------------------------------------
    def impressions_since(self, now: dt.datetime, hours: int = 24) -> dict[tuple[int, int, int], int]:
        """(quarter, campaign, banner) -> impressions recorded in the last `hours` hours:
        the running one and the `hours - 1` before it (those that ended less than
        `hours - 1` hours before `now`), summed over the groups and hosts: what
        survives a server restart (the dashboard's served counts)."""
        keys = self.layout()
        since = now.timestamp() - (hours - 1) * 3600
        out: dict[tuple[int, int, int], int] = {}
        for _, mine, recorded in self._hours_since(keys, since):
            pipe = self.r.pipeline(transaction=False)
            names = []
            for hour in recorded:
                for quarter in (1, 2, 3, 4):
                    for shard in range(IMPRESSION_SHARDS):
                        names.append(quarter)
                        pipe.hgetall(f"{mine}imp:{hour}:{quarter}:{shard}")
            for quarter, counts in zip(names, pipe.execute()):
                for fld, count in counts.items():
                    try:
                        campaign, banner = map(int, _text(fld).split(":"))
                        n = int(count)
                    except ValueError:
                        continue
                    out[quarter, campaign, banner] = out.get((quarter, campaign, banner), 0) + n
        return out

    # -- retention -----------------------------------------------------------------
    def tiers(self) -> dict[str, int]:
        """Retention tier -> seconds after its hour's end its keys are removed."""
        final = max(self.click_ttl, CONVERSION_TTL, self.keep_events, TOKEN_KEEP)
        return {"imp": self.keep_events, "tok": TOKEN_KEEP, "rec": final}

    def prune(self, now: dt.datetime) -> dict[str, int]:
        """Removes what is older than its retention (`tiers`): impression counters of
        hours that ended --keep-events before `now`, token indexes 25 h after, click
        records, conversion indexes and conversion records 30 days after (then the
        hour leaves the registry).  Each tier's progress is kept per group, so an hour is
        cleaned once per tier, and a prune that did not run for a while catches up.
        Returns {tier: hours cleaned}.  One slot per call (cluster-safe)."""
        keys = self.layout()
        tiers = self.tiers()
        ts = now.timestamp()
        done = {tier: 0 for tier in tiers}
        for group in range(keys.groups):
            mine = keys.group_prefixes[group]
            cursors = {_text(k): float(v) for k, v in self.r.hgetall(keys.pruned(group)).items()}
            for tier, keep in tiers.items():
                cutoff = int(ts - keep)
                low = "-inf" if tier == "rec" else f"({cursors.get(tier, float('-inf'))}"
                hours = [_text(m) for m in self.r.zrangebyscore(keys.hours(group), low, cutoff)]
                for hour in hours:
                    if tier == "imp":
                        self.r.unlink(*(f"{mine}{kind}:{hour}:{q}:{s}" for kind in ("imp", "inv")
                                        for q in (1, 2, 3, 4) for s in range(IMPRESSION_SHARDS)))
                    elif tier == "tok":
                        self.r.unlink(keys.click_tokens(hour, group))
                    else:
                        self._drop_conversions(keys, hour, group)
                        self.r.unlink(keys.clicks_by_hour(hour, group), keys.conversions_by_hour(hour, group),
                                      keys.invalid_clicks(hour, group))
                        self.r.zrem(keys.hours(group), hour)
                done[tier] += len(hours)
                if tier != "rec":
                    self.r.hset(keys.pruned(group), tier, cutoff)
        if any(done.values()):
            log.info("pruned recorded events older than their retention: %s", done)
        return done

    def _drop_conversions(self, keys: Keys, hour: str, group: int) -> None:
        """The conversion records an hour's index lists (same group: one slot)."""
        index = keys.conversions_by_hour(hour, group)
        cursor = 0
        while True:
            cursor, fields = self.r.hscan(index, cursor, count=1000)
            ids = [int(f) for f in fields if _text(f).isdigit()]
            if ids:
                self.r.unlink(*(keys.conversion(i) for i in ids))
            if not cursor:
                return

    def maybe_prune(self, now: dt.datetime, every: int = PRUNE_EVERY) -> dict[str, int] | None:
        """`prune(now)`, by at most one worker of the fleet per `every` seconds (a SET NX
        EX lease in the control slot); None when another had the lease, or when this
        store tried less than `every` seconds ago (so a click costs no extra round trip
        but once a period).  Raises redis errors (the lease then stays: the next try is
        after `every` seconds)."""
        ts = now.timestamp()
        if ts < self._next_prune:
            return None
        self._next_prune = ts + every
        if not self.r.set(self.keys.prune_lease, secrets.token_hex(8), nx=True, ex=int(every)):
            return None
        return self.prune(now)
