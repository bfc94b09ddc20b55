"""Reading what the publisher wrote: the current version, its selections, its files."""

from __future__ import annotations

import json

import redis

from .keys import Keys


def _s(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def current_version(r: redis.Redis, keys: Keys) -> str | None:
    return _s(r.get(keys.current))


def read_selections(r: redis.Redis, keys: Keys, ver: str | None = None) -> tuple[str | None, list[dict]]:
    """(version, the `show --json` records) of `ver`, default the current version."""
    ver = ver or current_version(r, keys)
    if ver is None:
        return None, []
    raw = r.get(keys.selections(ver))
    return (ver, json.loads(raw)) if raw is not None else (None, [])


def read_status(r: redis.Redis, keys: Keys) -> dict:
    ver = current_version(r, keys)
    if ver is None:
        return {"loaded": False}
    meta = {_s(k): json.loads(v) for k, v in r.hgetall(keys.meta(ver)).items()}
    files = [dict(json.loads(v), sha256=_s(k)) for k, v in r.hgetall(keys.files(ver)).items()]
    files.sort(key=lambda f: f["path"])
    return {"loaded": True, "version": ver, **meta, "files": files}


def snapshot(records: list[dict]) -> dict[int, dict[int, tuple[int, ...]]]:
    """quarter -> campaign -> banner ids: what a server worker keeps in memory."""
    out: dict[int, dict[int, tuple[int, ...]]] = {}
    for rec in records:
        out.setdefault(rec["quarter"], {})[rec["campaign_id"]] = tuple(
            b["banner_id"] for b in rec["banners"]
        )
    return out
