"""Writes a computed load into Redis as a new version, then switches to it atomically;
keeps the last KEEP_VERSIONS versions and switches back to one of them (rollback).

Only one load runs at a time: `LoadLock` is taken when a load starts and held until
it ends, as a short lease that a background thread renews while the load lives.  A
load killed with SIGKILL stops renewing, so the next load can start once the lease
runs out (seconds), and a load that lost its lease (paused past it) cannot switch.
A rollback takes the same lock: it never interleaves with a load's switch and cleanup.
"""

from __future__ import annotations

import gc
import json
import secrets
import threading
import uuid

import polars as pl
import redis
from redis.exceptions import LockError

from banner_server.layout.catalog import _s, kept_versions, load_order
from banner_server.layout.catalog import layout_groups as catalog_layout_groups
from banner_server.layout.keys import Keys
from banner_server.layout.pieces import ids_key, part_key, split_records, version_key_names
from banner_server.layout.scripts import ROLLBACK, SWITCH, UNLIST, bind

from .pipeline import LoadResult
from .rules import selections_to_records

# Seconds a load's lock outlives its last renewal: how long a killed load blocks the
# next one.  Renewed every third of it, so a renewal may be late twice before it is lost.
LOAD_LEASE = 10.0
# Versions kept: the current one and the 3 loaded before it (SPEC §6), by load order.
# A version of the real set takes 236 KB in Redis (bench/version_memory.py).
KEEP_VERSIONS = 4
# Bytes of values sent in one pipeline: ~4 MB is a few ms of Redis, so the lease's
# renewal (every LOAD_LEASE / 3) always gets its turn.
PIPELINE_BYTES = 4 << 20


class PublishError(Exception):
    """A load could not be published; what was serving before is still serving."""


class LoadRunning(PublishError):
    """Another load holds the load lock."""


class CleanupFailed(Exception):
    """The new version is published and current, but removing superseded versions failed.

    Nothing is lost: their keys stay in `versions` and the next load removes them.
    """

    def __init__(self, version: str, reason: str):
        super().__init__(f"published version {version}, but removing the old versions failed: {reason}")
        self.version = version
        self.reason = reason


class GroupsBehind(Exception):
    """The version is current, but switching some visitor groups' `current` failed: those
    groups still serve the version before (whole answers of it, never a mix).  /readyz
    says so until a load (or rollback) switches every group."""

    def __init__(self, version: str, behind: int, groups: int, reason: str):
        super().__init__(f"version {version} is current, but {behind} of {groups} visitor groups still serve "
                         f"the version before ({reason}); load again to switch them")
        self.version = version


class RollbackError(Exception):
    """Nothing was switched; `kept` are the versions a rollback may name, oldest load first."""

    def __init__(self, message: str, kept: list[str], current: str | None):
        super().__init__(message)
        self.kept = kept
        self.current = current


class LoadLock:
    """`with LoadLock(r, keys):` (or acquire/release) the one load allowed to run now, else LoadRunning.

    A redis-py Lock with a `lease`-second TTL, re-armed every lease/3 by a daemon
    thread and released only by its owner (token check in Lua).  `token` guards the
    switch in `publish`.
    """

    def __init__(self, r: redis.Redis, keys: Keys, lease: float | None = None):
        self.lease = LOAD_LEASE if lease is None else lease
        self.token = uuid.uuid4().hex
        # thread_local=False: the renewing thread must see the token the load took.
        self._lock = r.lock(keys.load_lock, timeout=self.lease, blocking=False, thread_local=False)
        self._r, self._name = r, keys.load_lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def acquire(self) -> "LoadLock":
        if not self._lock.acquire(token=self.token):
            ttl = self._r.pttl(self._name)
            left = f" (its lease ends in {ttl / 1000:.1f} s unless it is renewed)" if ttl and ttl > 0 else ""
            raise LoadRunning(f"another load is running{left}: nothing published; "
                              "try again when it ends")
        self._thread = threading.Thread(target=self._renew, name="load-lock", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self._lock.reacquire()
            except LockError:  # not ours any more (expired while we were paused, or flushed)
                self.lost = True
                return
            except (redis.RedisError, OSError):
                pass  # Redis briefly unreachable: try again; the switch checks the token anyway

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        try:
            self._lock.release()
        except (LockError, redis.RedisError, OSError):
            pass  # lost to its TTL, or Redis is gone: either way it expires on its own

    def __enter__(self) -> "LoadLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()




def _file_record(f) -> str:
    return json.dumps({"path": f.rel, "quarter": f.quarter, "kind": f.kind, "bytes": f.size, "rows": f.rows,
                       "accepted": f.accepted, "rejected": f.rejected_rows, "file_rejected": f.rejected})


def _delete_version(r: redis.Redis, keys: Keys, ver: str) -> None:
    if not bind(r, UNLIST)([keys.current, keys.history], [ver]):
        return  # current: never deleted
    # The selections manifest and its pieces (or a format-1 version's single JSON),
    # written before anything else of the version, list its keys: no SCAN over a
    # keyspace full of visitors (and over every cluster node).
    groups = r.hget(keys.meta(ver), "groups")
    vkeys = keys.with_groups(int(groups) if groups else keys.groups)
    names = version_key_names(r, vkeys, ver)
    for i in range(0, len(names), 500):
        r.unlink(*names[i:i + 500])
    r.srem(keys.versions, ver)


def layout_groups(r: redis.Redis, keys: Keys, wanted: int | None = None) -> int:
    """G for this load: `wanted`, else the layout's (catalog.layout_groups)."""
    return wanted or catalog_layout_groups(r, keys)


def switch_groups(r: redis.Redis, keys: Keys, ver: str, previous_groups: int | None = None) -> None:
    """Points every group's `current` at `ver` (after the global switch); a layout with
    another G leaves its old groups without `current`, so no worker keeps picking there."""
    pipe = r.pipeline(transaction=False)
    for key in keys.group_currents:
        pipe.set(key, ver)
    if previous_groups and previous_groups != keys.groups:
        for key in set(keys.with_groups(previous_groups).group_currents) - set(keys.group_currents):
            pipe.delete(key)
    try:
        pipe.execute()
    except redis.RedisError as exc:
        behind = sum(1 for key in keys.group_currents if _s(r.get(key)) != ver) if _reachable(r) else keys.groups
        raise GroupsBehind(ver, behind, keys.groups, str(exc)) from exc


def _reachable(r: redis.Redis) -> bool:
    try:
        return bool(r.ping())
    except redis.RedisError:
        return False


def publish(r: redis.Redis, keys: Keys, result: LoadResult, meta: dict, lock: LoadLock | None = None,
            groups: int | None = None) -> str:
    """Publishes `result` under `lock` (taken here if None); returns the new version id.

    Order matters for readers: every key of the new version is written first, then
    `current` is switched with one SET, then the versions beyond the newest
    KEEP_VERSIONS are removed.  A failure or a kill before the SET leaves the old
    version serving untouched; its leftovers are removed by the next successful load.
    A failure after the SET raises CleanupFailed: the new version is current all the same.
    """
    if lock is None:
        with LoadLock(r, keys) as lock:
            return publish(r, keys, result, meta, lock, groups)
    # The counter orders versions for people; the random part keeps an id from
    # ever being handed out twice when Redis loses its data (and the counter)
    # while workers still hold a snapshot of the old version under that id.
    stored = r.get(keys.groups_key)
    previous_groups = int(stored) if stored else None
    keys = keys.with_groups(layout_groups(r, keys, groups))
    seq = r.incr(keys.version_seq)
    ver = f"{seq}-{secrets.token_hex(3)}"
    r.sadd(keys.versions, ver)
    try:
        _write_version(r, keys, ver, result, {**meta, "groups": keys.groups})
        switched = bind(r, SWITCH)([keys.load_lock, keys.current, keys.history, keys.groups_key],
                                   [lock.token, ver, seq, keys.groups])
    except redis.RedisError:
        _try_delete(r, keys, ver)
        raise
    if not switched:
        _try_delete(r, keys, ver)
        raise PublishError("this load lost its lock (paused longer than its lease, or Redis lost it) and "
                           "another load may have started: nothing published; load again")
    switch_groups(r, keys, ver, previous_groups)
    try:
        _remove_old_versions(r, keys)
    except redis.RedisError as exc:
        raise CleanupFailed(ver, str(exc)) from exc
    return ver


def _remove_old_versions(r: redis.Redis, keys: Keys) -> None:
    """Deletes every version but the newest KEEP_VERSIONS by load order and the current
    one: those loaded earlier, and the leftovers of loads that never switched."""
    current, kept = kept_versions(r, keys)
    keep = {current, *kept[-KEEP_VERSIONS:]}
    listed = {v.decode() for v in r.smembers(keys.versions)} | set(kept)
    for old in sorted(listed - keep, key=load_order):
        _delete_version(r, keys, old)


def rollback(r: redis.Redis, keys: Keys, target: str | None = None,
             lock: LoadLock | None = None) -> tuple[str, str]:
    """Makes a kept version current again; returns (the version current before, now).

    `target`: a kept version's id, or its number alone when no other kept version has
    it; default the kept version loaded just before the current one, so each rollback
    goes one load further back.  The target already current changes nothing.  Raises
    RollbackError (nothing switched) when there is no such kept version.
    """
    if lock is None:
        with LoadLock(r, keys) as lock:
            return rollback(r, keys, target, lock)
    current, kept = kept_versions(r, keys)
    if current is None:
        raise RollbackError("nothing is published yet: there is no version to roll back to", kept, current)
    if target is None:
        before = kept[:kept.index(current)]
        if not before:
            raise RollbackError(f"version {current} is the oldest kept version: there is none before it to roll "
                                "back to", kept, current)
        target = before[-1]
    elif target not in kept:
        same_number = [v for v in kept if target.isdigit() and load_order(v) == int(target)]
        if len(same_number) != 1:
            raise RollbackError(f"no kept version {target!r}", kept, current)
        target = same_number[0]
    if target == current:
        return current, current
    stored, target_groups = r.get(keys.groups_key), r.hget(keys.meta(target), "groups")
    groups = int(stored) if stored else 1
    if target_groups is not None and int(json.loads(target_groups)) != groups:
        raise RollbackError(f"version {target} was published for {int(json.loads(target_groups))} visitor groups "
                            f"and the layout now has {groups}: load its data again instead", kept, current)
    keys = keys.with_groups(groups)
    done = bind(r, ROLLBACK)([keys.load_lock, keys.current, keys.history, keys.selections(target)],
                             [lock.token, target])
    if done == 0:
        raise RollbackError("this rollback lost the load lock (paused longer than its lease, or Redis lost it): "
                            "nothing switched; try again", kept, current)
    if done == -1:
        raise RollbackError(f"version {target} is no longer kept (removed by a load meanwhile)", kept, current)
    if done == -2:
        raise RollbackError(f"version {target} is kept, but its selections are missing from Redis: nothing "
                            "switched", kept, current)
    switch_groups(r, keys, target)
    return current, target


def selection_changes(old_records: list[dict], selections: pl.DataFrame) -> pl.DataFrame:
    """What publishing `selections` would change in what is served, against `old_records`
    (the `show --json` records of the current version).

    One row per quarter and campaign whose set of banners differs: `change` (`added`,
    `removed` or `changed`), `banners_added` and `banners_removed` (sorted ids).  Order
    and revenue within a selection do not count: requests draw uniformly from the set.
    """
    key = ["quarter", "campaign_id", "banner_id"]
    # Only the ids are read, so the other fields' JSON types (a revenue of 2 or 2.0) never matter.
    records_schema = {"quarter": pl.Int64, "campaign_id": pl.Int64,
                      "banners": pl.List(pl.Struct({"banner_id": pl.Int64}))}
    old = (pl.LazyFrame(old_records, schema=records_schema, strict=False)
           .explode("banners")
           .select("quarter", "campaign_id", pl.col("banners").struct.field("banner_id"))
           .drop_nulls())
    new = selections.lazy().select(key).cast(pl.Int64)
    added, removed = pl.col("new") & ~pl.col("old"), pl.col("old") & ~pl.col("new")
    return (
        pl.concat([old.with_columns(old=True, new=False), new.with_columns(old=False, new=True)])
        .group_by(key).agg(pl.col("old").any(), pl.col("new").any())
        .group_by("quarter", "campaign_id")
        .agg(
            was=pl.col("old").any(),
            will=pl.col("new").any(),
            banners_added=pl.col("banner_id").filter(added).sort(),
            banners_removed=pl.col("banner_id").filter(removed).sort(),
        )
        .filter((pl.col("banners_added").list.len() > 0) | (pl.col("banners_removed").list.len() > 0))
        .select(
            "quarter", "campaign_id",
            change=pl.when(~pl.col("was")).then(pl.lit("added"))
            .when(~pl.col("will")).then(pl.lit("removed")).otherwise(pl.lit("changed")),
            banners_added="banners_added",
            banners_removed="banners_removed",
        )
        .sort("quarter", "campaign_id")
        .collect()
    )


def _try_delete(r: redis.Redis, keys: Keys, ver: str) -> None:
    try:
        _delete_version(r, keys, ver)
    except redis.RedisError:
        pass  # the next load removes what is left


def _write_version(r: redis.Redis, keys: Keys, ver: str, result: LoadResult, meta: dict) -> None:
    # The records are millions of small acyclic objects (4 M banners on the 100k set):
    # Python's full collections over them took up to 2.8 s each, nine over a second,
    # all holding the interpreter: with the CPU shared, the lease's renewal thread
    # missed its 10 s.  No collection while they live; nothing here makes cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _write_records(r, keys, ver, result, meta)
    finally:
        if collecting:
            gc.enable()


def _write_records(r: redis.Redis, keys: Keys, ver: str, result: LoadResult, meta: dict) -> None:
    records = selections_to_records(result.selections)
    # The shared data first: the selections manifest and its pieces list the version's
    # keys, so even a load killed half-way through the group copies leaves nothing
    # cleanup cannot find.  In pieces (pieces.split_records): the single 212 MB JSON
    # of the 100k-campaign set was one SET that held Redis for seconds (the load lock's
    # renewal could not get through: the load lost its lease and published nothing),
    # and one json.dumps that held the interpreter as long.
    manifest, parts = split_records(records)
    r.set(keys.selections(ver), json.dumps(manifest, separators=(",", ":")))
    pipe = r.pipeline(transaction=False)
    queued = 0
    for quarter, piece, part, ids in parts:
        pipe.set(part_key(keys, ver, quarter, piece), part)
        pipe.set(ids_key(keys, ver, quarter, piece), ids)
        queued += len(part) + len(ids)
        if queued >= PIPELINE_BYTES:
            pipe.execute()
            queued = 0
    pipe.execute()
    campaigns = result.campaigns.rows() if result.campaigns is not None else []
    # A hash, one field per campaign: a worker reads it whole when small (catalog.
    # CAMPAIGNS_PREFETCH) and else one field at a time, cached; one 180 MB string of a
    # 1.5 M-row campaigns.csv fetched by every worker was an outage.  A value is
    # [name, url], or [name, url, cap impressions, cap window seconds] with a frequency cap.
    for i in range(0, len(campaigns), 5000):
        pipe.hset(keys.campaign_info(ver), mapping={
            str(row[0]): json.dumps([*row[1:3], *(row[3:5] if len(row) >= 5 and row[3] else ())],
                                    separators=(",", ":"))
            for row in campaigns[i:i + 5000]})
        pipe.execute()
    pipe.hset(keys.meta(ver), mapping={k: json.dumps(v) for k, v in {**meta, "version": ver}.items()})
    # Keyed by sha256; a later file with the same bytes (a duplicate_file) under
    # "sha256 path", so it does not overwrite the file that was loaded.
    files = {}
    for f in result.files:
        if f.sha256:
            files[f.sha256 if f.sha256 not in files else f"{f.sha256} {f.rel}"] = _file_record(f)
    if files:
        pipe.hset(keys.files(ver), mapping=files)
    for rec in records:
        pipe.zadd(keys.selection_zset(ver, rec["quarter"], rec["campaign_id"]),
                  {b["banner_id"]: b["revenue"] for b in rec["banners"]})
        if len(pipe) >= 5000:
            # In pieces: one pipeline of 400,000 commands held the interpreter long enough
            # for the load lock's renewal thread to miss its lease (100k-campaign set).
            pipe.execute()
    pipe.execute()
    # One copy of every selection set per visitor group: a request reads the copy in
    # its visitor's slot (cost of a load: G x the sets; see README, Scaling out).
    pipe = r.pipeline(transaction=False)
    for group in range(keys.groups):
        for rec in records:
            pipe.sadd(keys.selection_set(ver, rec["quarter"], rec["campaign_id"], group),
                      *[b["banner_id"] for b in rec["banners"]])
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()
