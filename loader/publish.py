"""Writes a computed load into Redis as a new version, then switches to it atomically."""

from __future__ import annotations

import json
import secrets
import uuid

import redis

from banner_server.catalog import current_version
from banner_server.keys import Keys

from .pipeline import LoadResult
from .rules import selections_to_records

LOCK_TTL_MS = 10 * 60 * 1000


class PublishError(Exception):
    """A load could not be published; what was serving before is still serving."""


def _delete_version(r: redis.Redis, keys: Keys, ver: str) -> None:
    batch = []
    for key in r.scan_iter(match=keys.version(ver) + "*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            r.unlink(*batch)
            batch.clear()
    if batch:
        r.unlink(*batch)
    r.srem(keys.versions, ver)


def publish(r: redis.Redis, keys: Keys, result: LoadResult, meta: dict) -> str:
    """Publishes `result`; returns the new version id.

    Order matters for readers: every key of the new version is written first, then
    `current` is switched with one SET, then superseded versions are removed.  A
    failure or a kill before the SET leaves the old version serving untouched; its
    leftovers are removed by the next successful load.
    """
    token = uuid.uuid4().hex
    lock = keys.load_lock
    if not r.set(lock, token, nx=True, px=LOCK_TTL_MS):
        raise PublishError("another load is publishing right now; try again when it ends")
    try:
        # The counter orders versions for people; the random part keeps an id from
        # ever being handed out twice when Redis loses its data (and the counter)
        # while workers still hold a snapshot of the old version under that id.
        ver = f"{r.incr(keys.version_seq)}-{secrets.token_hex(3)}"
        r.sadd(keys.versions, ver)
        try:
            _write_version(r, keys, ver, result, meta)
            r.set(keys.current, ver)
        except redis.RedisError:
            try:
                _delete_version(r, keys, ver)
            except redis.RedisError:
                pass  # the next load removes what is left
            raise
        # A concurrent load may have switched after us (its lock expired): never
        # delete whatever is current now.
        current = current_version(r, keys)
        for old in r.smembers(keys.versions):
            if old.decode() not in (ver, current):
                _delete_version(r, keys, old.decode())
        return ver
    finally:
        # Release only our own lock (a slow load may have lost it to its TTL).
        r.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            1,
            lock,
            token,
        )


def _write_version(r: redis.Redis, keys: Keys, ver: str, result: LoadResult, meta: dict) -> None:
    records = selections_to_records(result.selections)
    pipe = r.pipeline(transaction=False)
    for rec in records:
        q, c = rec["quarter"], rec["campaign_id"]
        ids = [b["banner_id"] for b in rec["banners"]]
        pipe.sadd(keys.selection_set(ver, q, c), *ids)
        pipe.zadd(keys.selection_zset(ver, q, c), {b["banner_id"]: b["revenue"] for b in rec["banners"]})
        pipe.sadd(keys.campaigns(ver, q), c)
    pipe.set(keys.selections(ver), json.dumps(records, separators=(",", ":")))
    files = {
        f.sha256: json.dumps(
            {
                "path": f.rel,
                "quarter": f.quarter,
                "kind": f.kind,
                "bytes": f.size,
                "rows": f.rows,
                "accepted": f.accepted,
                "rejected": f.rejected_rows,
                "file_rejected": f.rejected,
            }
        )
        for f in result.files
        if f.sha256
    }
    if files:
        pipe.hset(keys.files(ver), mapping=files)
    pipe.hset(
        keys.meta(ver),
        mapping={k: json.dumps(v) for k, v in {**meta, "version": ver}.items()},
    )
    pipe.execute()
