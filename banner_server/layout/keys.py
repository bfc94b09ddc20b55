"""The Redis key layout, shared by the publisher (loader) and the server.

Every key starts with a prefix (default ``banners:``) so one Redis can host several
deployments.  Keys carry a Redis Cluster hash tag (the part in braces), which decides
the hash slot, hence the node, a key lives on:

* the *control* keys and each version's shared data sit under one tag, ``{banners}``
  (the prefix without its colon), so the publisher's Lua steps (switch under the
  load lock, rollback, cleanup) touch a single slot;
* everything a request touches sits under its visitor's *group* tag.  Visitors are
  hashed into G groups; each group holds its own copy of ``current`` and of the
  selection sets, next to its visitors' last-banner keys.  A request's one Lua call
  therefore stays in one slot (every key declared in KEYS), and the groups' tags are
  chosen to fall in evenly spaced slots, so on a cluster the visitors, and the load,
  spread over every master.  On a single Redis, G = 1.

A load writes a complete version under its own keys (the shared data first, then a
copy of the sets per group), then switches the global ``current`` under the load lock,
then each group's ``current``; readers resolve a ``current`` first and never read
across two versions.

    {p}{t}:current                  string: the version being served, e.g. ``12-9f3a1c``
    {p}{t}:groups                   string: G, the number of visitor groups of the layout
    {p}{t}:version_seq              counter: the number part of the last version id
    {p}{t}:versions                 set: every version that may still have keys
    {p}{t}:history                  sorted set: the versions a load made current, scored by
                                    load order: what `banners versions` lists and `banners
                                    rollback` may switch to (loader.publish.KEEP_VERSIONS)
    {p}{t}:load_lock                string: the running load's token (a renewed 10 s lease)
    {p}{t}:v:{ver}:meta             hash: seed, loaded_at, data_dir, quarters, groups, ...
    {p}{t}:v:{ver}:files            hash: sha256 -> JSON {path, quarter, kind, rows, ...}
    {p}{t}:v:{ver}:selections       string: the manifest of the pieces below (format 2, a few
                                    KB; see pieces.split_records); a version published before
                                    them holds the whole `banners show --json` JSON here
    {p}{t}:v:{ver}:q:{q}:part:{i}   string: JSON records of piece i of quarter q (250
                                    campaigns in id order): `show`, a campaign's dashboard page
    {p}{t}:v:{ver}:q:{q}:ids:{i}    string: the same campaigns' ids, scenario, X and banner ids
                                    as arrays (pieces.QuarterIds): worker snapshots, the
                                    dashboard's list, the version's key list for cleanup
    {p}{t}:v:{ver}:campaigns        hash: campaign -> JSON [name, landing_url] (campaigns.csv), or
                                    [name, landing_url, cap_impressions, cap_window] with a cap
    {p}{t}:v:{ver}:q:{q}:c:{c}:z    sorted set: banner id -> revenue (the scores kept)
    {p}{g}:current                  string: the version group g serves
    {p}{g}:v:{ver}:q:{q}:c:{c}      set: the selection's banner ids, group g's copy (SRANDMEMBER)
    {p}{g}:vis:{visitor}            string: the visitor's last banner (TTL)
    {p}{g}:cap:{visitor}:{c}:{w}:{n}  counter: the visitor's valid impressions of campaign c in
                                    window n (unix time // w) of w seconds: the frequency cap
                                    (TTL w; anonymous state like the visitor key, evictable)
    {p}{g}:crate:{visitor}:{minute} counter: the visitor's clicks in this clock minute
                                    (BANNERS_MAX_CLICKS_PER_MINUTE; TTL 2 minutes, evictable)

with {t} the control tag and {g} a group's tag, e.g. ``{g3.60}``.

What the service records (SPEC §7) is billing data: it has NO TTL, so under
`maxmemory-policy volatile-lru` Redis only ever evicts the visitor keys above (the only
keys with a TTL: the least recently seen visitors are forgotten first).  Retention is
explicit: every hour something is recorded in is entered in its group's registry, and
EventStore.prune removes an hour's keys once it is old enough (see layout/retention.py).
{hour} is the server's local hour, ``2026-11-28T23``, {q} its quarter:

    {p}{t}:prune_lease              string: the worker pruning now (SET NX EX: one per fleet
                                    and period)
    {p}{g}:hours                    sorted set: hour -> its end (unix time): every hour with
                                    something recorded in group g (export, retention)
    {p}{g}:pruned                   hash: retention tier -> the hour ends pruned up to
    {p}{g}:imp:{hour}:{q}:{s}       hash: "campaign:banner" -> impressions (the pick script
                                    counts them, in the visitor's group); s = campaign % 16;
                                    kept --keep-events (default 48 h) after the hour
    {p}{g}:inv:{hour}:{q}:{s}       hash: "campaign:banner:reason" -> invalid impressions (bots,
                                    prefetch, HEAD...: web/quality.py), counted by the same
                                    pick call instead of the valid counter; kept like it
    {p}{g}:cinv:{hour}              hash: "quarter:campaign:banner:reason" -> invalid clicks
                                    (replays included, which write no record); kept 30 days
    {p}{g}:clicks:{hour}            hash: click_id -> "campaign banner quarter served_at
                                    clicked_at flags [reason]" (a reason: an invalid click, kept
                                    for audit, never exported as valid): the click records of the hour (export,
                                    postbacks); kept 30 days (a conversion may name a click
                                    that long); g of the id, which the id's time names the hour
    {p}{g}:tok:{hour}               hash: digest of a click token -> its click_id (a replayed
                                    click URL records nothing new); {hour} the one served in;
                                    kept while the token lives (24 h) and an hour more
    {p}{g}:conv:{conversion_id}     string "click_id revenue": the conversion (idempotence);
                                    g of the id; removed with its hour's index, after 30 days
    {p}{g}:convs:{hour}             hash: conversion_id -> "click_id revenue quarter" (export);
                                    kept 30 days (it lists the records above for their removal)

Before the hours' hashes a click was a key of its own, ``{p}{g}:click:{click_id}`` with a
30-day TTL (ids from an INCR counter, ``{p}{t}:click_seq``): postbacks still read it
until it expires (EventStore._legacy_click); nothing writes either any more.

A click_id is time-derived and random (unix ms << 20 | 20 random bits, < 2**63), so no
id repeats after Redis lost its data or failed over; its group is id % G.
"""

from __future__ import annotations

import functools
import zlib

from redis.crc import key_slot

DEFAULT_PREFIX = "banners:"
SLOTS = 16384
MAX_GROUPS = 1024
IMPRESSION_SHARDS = 16


@functools.lru_cache(maxsize=64)
def group_tags(groups: int) -> tuple[str, ...]:
    """G hash tags whose slots are evenly spaced: tag i falls in the i-th G-th of the
    slot range, so slots assigned to masters in ranges (as clusters are) spread the
    groups, and with them the visitors, over every master.  Short (`g3.60`): every
    visitor key carries one."""
    if not 1 <= groups <= MAX_GROUPS:
        raise ValueError(f"groups must be 1 to {MAX_GROUPS}, not {groups}")
    tags = []
    for i in range(groups):
        low, high = i * SLOTS // groups, (i + 1) * SLOTS // groups
        n = 0
        while not low <= key_slot(f"g{i}.{n}".encode()) < high:
            n += 1
        tags.append(f"g{i}.{n}")
    return tuple(tags)


class Keys:
    def __init__(self, prefix: str = DEFAULT_PREFIX, groups: int = 1):
        self.prefix = prefix
        self.base = prefix.rstrip(":").replace("{", "").replace("}", "") or "banners"
        control = f"{prefix}{{{self.base}}}:"
        self.control = control
        self.current = control + "current"
        self.groups_key = control + "groups"
        self.version_seq = control + "version_seq"
        self.versions = control + "versions"
        self.history = control + "history"
        self.load_lock = control + "load_lock"
        self.set_groups(groups)

    def set_groups(self, groups: int) -> None:
        self.groups = groups
        self.group_prefixes = tuple(f"{self.prefix}{{{tag}}}:" for tag in group_tags(groups))
        self.group_currents = tuple(gp + "current" for gp in self.group_prefixes)
        self.hour_registries = tuple(gp + "hours" for gp in self.group_prefixes)  # made once: the pick names one

    def with_groups(self, groups: int) -> "Keys":
        return self if groups == self.groups else Keys(self.prefix, groups)

    # -- a version's shared data (control slot) ------------------------------------
    def version(self, ver: str) -> str:
        return f"{self.control}v:{ver}:"

    def meta(self, ver: str) -> str:
        return self.version(ver) + "meta"

    def files(self, ver: str) -> str:
        return self.version(ver) + "files"

    def selections(self, ver: str) -> str:
        return self.version(ver) + "selections"

    def campaign_info(self, ver: str) -> str:
        return self.version(ver) + "campaigns"

    def selection_zset(self, ver: str, quarter: int, campaign: int) -> str:
        return f"{self.version(ver)}q:{quarter}:c:{campaign}:z"

    # -- what a request touches (its visitor's group slot) ----------------------------
    def group_of(self, visitor: str) -> int:
        if self.groups == 1:
            return 0
        return zlib.crc32(visitor.encode()) % self.groups

    def selection_set(self, ver: str, quarter: int, campaign: int, group: int = 0) -> str:
        return f"{self.group_prefixes[group]}v:{ver}:q:{quarter}:c:{campaign}"

    def visitor(self, visitor: str, group: int | None = None) -> str:
        if group is None:
            group = self.group_of(visitor)
        return f"{self.group_prefixes[group]}vis:{visitor}"

    # -- what the service records (banner_server.events) -----------------------------
    @property
    def prune_lease(self) -> str:
        return self.control + "prune_lease"

    def hours(self, group: int) -> str:
        """Group g's hour registry: hour -> its end as unix time."""
        return self.hour_registries[group]

    def pruned(self, group: int) -> str:
        return self.group_prefixes[group] + "pruned"

    def id_group(self, ident: int) -> int:
        """The group of a click or conversion id: records spread like visitors."""
        return ident % self.groups

    def token_group(self, digest: str) -> int:
        """The group a click token's click goes to (its id is drawn to fall in it)."""
        return 0 if self.groups == 1 else zlib.crc32(digest.encode()) % self.groups

    def legacy_click(self, click_id: int) -> str:
        """A click's own key, as clicks were kept before the hours' hashes (read only,
        for postbacks of clicks made before the upgrade; they expire within 30 days)."""
        return f"{self.group_prefixes[self.id_group(click_id)]}click:{click_id}"

    def click_tokens(self, hour: str, group: int) -> str:
        return f"{self.group_prefixes[group]}tok:{hour}"

    def impressions(self, hour: str, quarter: int, group: int, campaign: int) -> str:
        """The counter hash of a campaign's impressions (one of IMPRESSION_SHARDS per group,
        hour and quarter): small hashes stay in Redis' compact encoding, where an
        HINCRBY scans the fields; one hash of ~500 fields cost 10 us a call, 16 cost 2."""
        return f"{self.group_prefixes[group]}imp:{hour}:{quarter}:{campaign % IMPRESSION_SHARDS}"

    def all_impressions(self, hour: str, quarter: int) -> list[str]:
        """Every counter hash of an hour and quarter (for export): groups x shards."""
        return [f"{gp}imp:{hour}:{quarter}:{shard}" for gp in self.group_prefixes
                for shard in range(IMPRESSION_SHARDS)]

    def invalid_impressions(self, hour: str, quarter: int, group: int, campaign: int) -> str:
        """The hash of a campaign's invalid impressions by reason (field
        `campaign:banner:reason`), sharded like `impressions`."""
        return f"{self.group_prefixes[group]}inv:{hour}:{quarter}:{campaign % IMPRESSION_SHARDS}"

    def all_invalid_impressions(self, hour: str, quarter: int) -> list[str]:
        return [f"{gp}inv:{hour}:{quarter}:{shard}" for gp in self.group_prefixes
                for shard in range(IMPRESSION_SHARDS)]

    def invalid_clicks(self, hour: str, group: int) -> str:
        """The hash of an hour's invalid clicks by reason: `quarter:campaign:banner:reason`."""
        return f"{self.group_prefixes[group]}cinv:{hour}"

    def frequency(self, visitor: str, group: int, campaign: int, window: int, now: float) -> str:
        """The visitor's valid impressions of `campaign` in the fixed window of `window`
        seconds holding `now` (the injected clock: the key changes at the window's edge)."""
        return f"{self.group_prefixes[group]}cap:{visitor}:{campaign}:{window}:{int(now // window)}"

    def click_rate(self, visitor: str, group: int, now: float) -> str:
        """The visitor's clicks in this clock minute (web.quality.click_rate_key's name)."""
        return f"{self.group_prefixes[group]}crate:{visitor}:{int(now // 60)}"

    def clicks_by_hour(self, hour: str, group: int) -> str:
        return f"{self.group_prefixes[group]}clicks:{hour}"

    def conversion(self, conversion_id: int) -> str:
        return f"{self.group_prefixes[self.id_group(conversion_id)]}conv:{conversion_id}"

    def conversions_by_hour(self, hour: str, group: int) -> str:
        return f"{self.group_prefixes[group]}convs:{hour}"

    def version_keys(self, ver: str, records: list[dict]) -> list[str]:
        """Every key a version of these `show --json` records has (for its removal)."""
        out = [self.meta(ver), self.files(ver), self.selections(ver), self.campaign_info(ver)]
        for rec in records:
            q, c = rec["quarter"], rec["campaign_id"]
            out.append(self.selection_zset(ver, q, c))
            out.extend(self.selection_set(ver, q, c, g) for g in range(self.groups))
        return out
