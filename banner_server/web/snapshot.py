"""A worker's copy of the published version, read from Redis: its manifest, the compact
banner ids of the quarters it serves, and the campaigns' names, landing pages and caps
(the whole map when small, else one campaign at a time).  SelectionStore (store.py)
derives from it and answers from this copy when Redis cannot pick; the dashboard reads
its catalog, names and searches here."""

from __future__ import annotations

import json
from collections import OrderedDict

import redis

from ..clients.errors import REDIS_ERRORS
from ..layout.catalog import Catalog, current_version, read_campaign, read_campaign_map, read_campaigns
from ..layout.keys import Keys
from ..layout.pieces import PiecedCatalog, QuarterIds, manifest_of, read_quarter_ids

_CAMPAIGNS_CACHED = 10_000  # campaigns' (name, landing) kept per worker when the map is read lazily
_NAME_SEARCH_LIMIT = 20_000  # campaigns whose name a dashboard search reads, when the map is lazy
# Seconds a snapshot read may take (its own connection, never the pick's 50 ms budget):
# a quarter of the 100k-campaign set is ~9 MB of compact pieces.
SNAPSHOT_TIMEOUT = 10.0


class Snapshot:
    """The snapshot of one version, read by `client` (redis-py; on its own connections
    when it can, see snapshot_client)."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.r = client
        self.keys = keys
        self.caps: dict[int, tuple[int, int]] = {}  # campaign -> (impressions, window) from campaigns.csv
        # The version of the snapshot: kept when Redis loses `current`, so degraded
        # answers still say which data they come from.
        self.version: str | None = None
        # quarter -> its campaigns' banner ids (catalog.QuarterIds, compact), for the
        # quarters fetched (None: no version seen yet).  Which ones: `quarter_now` (a
        # callable giving the quarter served now) when set, the quarter now and the
        # next; else every quarter of the version.
        self.selections: dict[int, QuarterIds] | None = None
        self.quarter_now = None
        self._manifest: dict | None = None  # None with a version: a format-1 one (one JSON)
        self._snapshot_r = None
        self.records: list[dict] = []  # a format-1 version's records (its dashboard reads them)
        # id -> (name, landing URL): the whole map when small, else None and `_campaign_cache`
        # (an LRU of the campaigns asked for, read one HGET each).
        self.campaign_info: dict[int, tuple[str | None, str | None]] | None = {}
        self._campaign_cache: OrderedDict[int, tuple | None] = OrderedDict()
        self._catalog: tuple[str | None, Catalog] | None = None
        self.quarters: tuple[int, ...] = ()

    def snapshot_client(self):
        """redis-py on its own connections with SNAPSHOT_TIMEOUT, for the snapshot's
        pieces: a plain Redis' pool copied; a cluster or Sentinel client is used as it
        is (its timeout is the configured one)."""
        if self._snapshot_r is None:
            pool = getattr(self.r, "connection_pool", None)
            if type(pool) is redis.ConnectionPool and isinstance(self.r, redis.Redis):
                kwargs = {**pool.connection_kwargs, "socket_timeout": max(
                    SNAPSHOT_TIMEOUT, pool.connection_kwargs.get("socket_timeout") or 0)}
                self._snapshot_r = redis.Redis(connection_pool=redis.ConnectionPool(
                    connection_class=pool.connection_class, max_connections=2, **kwargs))
            else:
                self._snapshot_r = self.r
        return self._snapshot_r

    def wanted_quarters(self, quarters: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """The quarters (of `quarters`, default the version's) a worker holds: the one
        served now and the next (it starts within 15 minutes), or all of them when
        `quarter_now` is unset."""
        quarters = self.quarters if quarters is None else quarters
        if self.quarter_now is None:
            return quarters
        now = self.quarter_now()
        return tuple(q for q in (now, now % 4 + 1) if q in quarters)

    def refresh(self, version: str | None = None) -> None:
        """Loads `version` (default: current) into the worker's snapshot: its manifest
        (a few KB), then the compact ids of the wanted quarters (one quarter of 100,000
        campaigns x 10 banners: ~9 MB held as arrays), on the snapshot client."""
        if version is None:
            version = current_version(self.r, self.keys)
            if version is None:
                return  # keep the snapshot and its version: degraded answers need them
        if version == self.version and self.selections is not None:
            self._top_up()
            return
        client = self.snapshot_client()
        raw = client.get(self.keys.selections(version))
        if raw is None:
            return  # superseded between the pick and this read; the next pick tells
        manifest = manifest_of(raw)
        groups = self.r.hget(self.keys.meta(version), "groups")
        keys = self.keys.with_groups(int(groups) if groups else 1)
        if manifest is None:  # a version published before the pieces (format 1): one JSON
            records = json.loads(raw)
            quarters = tuple(sorted({rec["quarter"] for rec in records}))
            selections = {q: QuarterIds.from_records(records, q) for q in quarters}
        else:
            records = []
            quarters = tuple(sorted(int(q) for q in manifest["quarters"]))
            selections = {}
            for q in self.wanted_quarters(quarters):
                ids = read_quarter_ids(client, keys, version, manifest, q)
                if ids is None:
                    return  # being removed: a newer version is current, the next pick tells
                selections[q] = ids
        self.keys = keys
        self.campaign_info = read_campaign_map(self.r, self.keys, version)
        self._campaign_cache = OrderedDict()
        # [name, landing URL] or [name, landing URL, cap impressions, cap window]: the
        # caps of a map too big to hold are read with the campaign (cap_of)
        self.caps = {c: (int(v[2]), int(v[3])) for c, v in (self.campaign_info or {}).items()
                     if len(v) >= 4 and v[2]}
        self.records = records
        self._manifest = manifest
        self.quarters = quarters
        self.selections = selections
        self.version = version
        self._catalog = None

    def _top_up(self) -> None:
        """Fetches a wanted quarter not held yet and drops those no longer wanted (the
        quarter of the hour turned): called from /readyz and the operator pages, so the
        next quarter is held before a campaign request needs it."""
        if self._manifest is None or self.selections is None:
            return
        wanted = self.wanted_quarters()
        for q in [q for q in self.selections if q not in wanted]:
            del self.selections[q]
        for q in wanted:
            if q not in self.selections:
                ids = read_quarter_ids(self.snapshot_client(), self.keys, self.version, self._manifest, q)
                if ids is not None:
                    self.selections[q] = ids

    def quarter_ids(self, quarter: int) -> QuarterIds | None:
        """The compact snapshot of `quarter`: held, or fetched now (the dashboard's list
        of a quarter not served now; not kept unless wanted)."""
        held = (self.selections or {}).get(quarter)
        if held is not None or self._manifest is None or quarter not in self.quarters:
            return held
        ids = read_quarter_ids(self.snapshot_client(), self.keys, self.version, self._manifest, quarter)
        if ids is not None and quarter in self.wanted_quarters():
            self.selections[quarter] = ids
        return ids

    def landing(self, campaign: int) -> tuple[str | None, str | None] | None:
        """(name, landing URL) of the campaign from the published campaigns.csv.  A big
        map is read one campaign at a time and the last _CAMPAIGNS_CACHED kept; when
        Redis does not answer, None (no name) and nothing cached."""
        if self.campaign_info is not None:
            return self.campaign_info.get(campaign)
        cache = self._campaign_cache
        if campaign in cache:
            cache.move_to_end(campaign)
            return cache[campaign]
        if self.version is None:
            return None
        try:
            info = read_campaign(self.r, self.keys, self.version, campaign)
        except REDIS_ERRORS:
            return None
        cache[campaign] = info
        if len(cache) > _CAMPAIGNS_CACHED:
            cache.popitem(last=False)
        return info

    def campaign_name(self, campaign: int) -> str | None:
        """The campaign's name from the published campaigns.csv, None when it has none."""
        info = self.landing(campaign)
        return info[0] if info else None

    def campaign_names(self, campaigns: list[int]) -> dict[int, str | None]:
        """The names of a page of campaigns: from the map when it is held, else one HMGET
        per 1,000 (not cached: pages of / and the dashboard read them so)."""
        if self.campaign_info is not None or self.version is None:
            return {c: self.campaign_name(c) for c in campaigns}
        try:
            infos = read_campaigns(self.r, self.keys, self.version, campaigns)
        except REDIS_ERRORS:
            return {}
        return {c: info[0] if info else None for c, info in zip(campaigns, infos)}

    def catalog(self) -> Catalog:
        """The version's selections for the dashboard (built once per version)."""
        if self._catalog is None or self._catalog[0] != self.version:
            if self._manifest is None:
                catalog = Catalog(self.records)
            else:
                catalog = PiecedCatalog(self.snapshot_client(), self.keys, self.version, self._manifest,
                                        self.quarter_ids, held=lambda q: (self.selections or {}).get(q))
            self._catalog = (self.version, catalog)
        return self._catalog[1]

    def search_names(self, rows: list, text: str) -> list:
        """The rows (campaign id first) whose campaign name holds `text` (any case).  A
        lazily read map is searched in its first _NAME_SEARCH_LIMIT rows only."""
        text = text.casefold()
        if self.campaign_info is None:
            rows = rows[:_NAME_SEARCH_LIMIT]
            try:
                infos = read_campaigns(self.r, self.keys, self.version, [row[0] for row in rows])
            except REDIS_ERRORS:
                return []
        else:
            infos = [self.campaign_info.get(row[0]) for row in rows]
        return [row for row, info in zip(rows, infos) if info and info[0] and text in info[0].casefold()]
