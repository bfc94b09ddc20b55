"""Reading what the publisher wrote: the current version, its selections, its files,
the versions kept for a rollback, the visitor groups and the campaigns map (the
selections' pieces themselves: layout/pieces.py)."""

from __future__ import annotations

import json

import redis

from .keys import Keys
from .pieces import read_records


def _s(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def current_version(r: redis.Redis, keys: Keys) -> str | None:
    return _s(r.get(keys.current))


def load_order(ver: str) -> int:
    """The number part of a version id (`12-9f3a1c` -> 12): the order loads ran in."""
    head = ver.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def kept_versions(r: redis.Redis, keys: Keys) -> tuple[str | None, list[str]]:
    """(current, the versions a rollback may switch to, oldest load first).

    The current one is always among them, even one published before `history` existed.
    """
    pipe = r.pipeline(transaction=False)
    pipe.get(keys.current)
    pipe.zrange(keys.history, 0, -1)
    current, history = pipe.execute()
    current, history = _s(current), [_s(v) for v in history]
    if current is not None and current not in history:
        history = sorted([*history, current], key=load_order)
    return current, history


def list_versions(r: redis.Redis, keys: Keys) -> list[dict]:
    """`banners versions --json`: the kept versions, newest load first."""
    current, kept = kept_versions(r, keys)
    pipe = r.pipeline(transaction=False)
    for ver in kept:
        pipe.hgetall(keys.meta(ver))
    out = []
    for ver, raw in zip(reversed(kept), reversed(pipe.execute())):
        meta = {_s(k): json.loads(v) for k, v in raw.items()}
        out.append({
            "version": ver,
            "current": ver == current,
            "loaded_at": meta.get("loaded_at"),
            "data_dir": meta.get("data_dir"),
            "seed": meta.get("seed"),
            "quarters": meta.get("quarters"),
            "banners": meta.get("selections"),
        })
    return out


def read_selections(r: redis.Redis, keys: Keys, ver: str | None = None) -> tuple[str | None, list[dict]]:
    """(version, the `show --json` records) of `ver`, default the current version."""
    ver = ver or current_version(r, keys)
    if ver is None:
        return None, []
    raw = r.get(keys.selections(ver))
    return (ver, read_records(r, keys, ver, raw)) if raw is not None else (None, [])


def read_status(r: redis.Redis, keys: Keys) -> dict:
    ver = current_version(r, keys)
    if ver is None:
        return {"loaded": False}
    meta = {_s(k): json.loads(v) for k, v in r.hgetall(keys.meta(ver)).items()}
    # a field is the sha256, or "sha256 path" for a later file with the same bytes
    files = [dict(json.loads(v), sha256=_s(k).split(" ", 1)[0]) for k, v in r.hgetall(keys.files(ver)).items()]
    files.sort(key=lambda f: f["path"])
    return {"loaded": True, "version": ver, **meta, "groups": group_versions(r, keys), "files": files}


CLUSTER_GROUPS = 16  # a few groups per master: visitors spread over all of them


def default_groups(r) -> int:
    """G of a layout nothing was published in yet: 1 on a single Redis, 16 on a cluster."""
    from redis.cluster import RedisCluster

    return CLUSTER_GROUPS if isinstance(r, RedisCluster) else 1


def layout_groups(r, keys: Keys, stored=None) -> int:
    """G of the layout: the stored one (read unless given), else the default."""
    stored = r.get(keys.groups_key) if stored is None else stored
    return int(stored) if stored else default_groups(r)


def group_versions(r: redis.Redis, keys: Keys) -> dict:
    """How many visitor groups the layout has, and which version each one serves (a
    failed publish can leave some on the version before: /readyz then says so)."""
    gkeys = keys.with_groups(layout_groups(r, keys))
    pipe = r.pipeline(transaction=False)
    for key in gkeys.group_currents:
        pipe.get(key)
    serving = [_s(v) for v in pipe.execute()]
    by_version: dict[str, list[int]] = {}
    for group, ver in enumerate(serving):
        by_version.setdefault(ver or "none", []).append(group)
    return {"count": gkeys.groups, "serving": by_version}


def snapshot(records: list[dict]) -> dict[int, dict[int, tuple[int, ...]]]:
    """quarter -> campaign -> banner ids: what a server worker keeps in memory."""
    out: dict[int, dict[int, tuple[int, ...]]] = {}
    for rec in records:
        out.setdefault(rec["quarter"], {})[rec["campaign_id"]] = tuple(
            b["banner_id"] for b in rec["banners"]
        )
    return out


class Catalog:
    """A version's selections as the dashboard reads them: the campaigns of a quarter
    (with scenario, X and how many banners, in id order) and one selection by
    (quarter, campaign).  Built once per version per worker from the records."""

    def __init__(self, records: list[dict]):
        self._by_key = {(rec["quarter"], rec["campaign_id"]): rec for rec in records}
        self._listing: dict[int, list[tuple[int, str, int, int]]] = {}
        for rec in sorted(records, key=lambda r: (r["quarter"], r["campaign_id"])):
            self._listing.setdefault(rec["quarter"], []).append(
                (rec["campaign_id"], rec["scenario"], rec["x"], len(rec["banners"])))

    def listing(self, quarter: int, scenario: str | None = None) -> list[tuple[int, str, int, int]]:
        rows = self._listing.get(quarter, [])
        return [row for row in rows if row[1] == scenario] if scenario else rows

    def selection(self, quarter: int, campaign: int) -> dict | None:
        return self._by_key.get((quarter, campaign))


# A campaigns map up to this many campaigns is read whole when a worker takes a version
# (the sample's 50: one HGETALL); a bigger one a campaign at a time, when first asked.
CAMPAIGNS_PREFETCH = 20_000


def read_campaign_map(r: redis.Redis, keys: Keys, ver: str) -> dict[int, tuple] | None:
    """The whole campaigns map of `ver` when small ({} when none), else None: read it
    per campaign with read_campaign."""
    key = keys.campaign_info(ver)
    try:
        size = r.hlen(key)
    except redis.ResponseError:  # WRONGTYPE: a version published as one JSON string
        raw = r.get(key)
        return {int(c): tuple(v) for c, v in json.loads(raw).items()} if raw else {}
    if size > CAMPAIGNS_PREFETCH:
        return None
    return {int(c): tuple(json.loads(v)) for c, v in r.hgetall(key).items()} if size else {}


def read_campaign(r: redis.Redis, keys: Keys, ver: str, campaign: int) -> tuple | None:
    """(name, landing URL) of one campaign of `ver`, None when campaigns.csv has no row for it."""
    raw = r.hget(keys.campaign_info(ver), str(campaign))
    return tuple(json.loads(raw)) if raw else None


def read_campaigns(r: redis.Redis, keys: Keys, ver: str, campaigns: list[int]) -> list[tuple | None]:
    """(name, landing URL) of each of `campaigns` (None: no row), one HMGET per 1,000."""
    out: list[tuple | None] = []
    for i in range(0, len(campaigns), 1000):
        raws = r.hmget(keys.campaign_info(ver), [str(c) for c in campaigns[i:i + 1000]])
        out.extend(tuple(json.loads(raw)) if raw else None for raw in raws)
    return out
