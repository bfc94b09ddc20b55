"""Writes a computed load into Redis as a new version, then switches to it atomically.

Only one load runs at a time: `LoadLock` is taken when a load starts and held until
it ends, as a short lease that a background thread renews while the load lives.  A
load killed with SIGKILL stops renewing, so the next load can start once the lease
runs out (seconds), and a load that lost its lease (paused past it) cannot switch.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid

import redis
from redis.exceptions import LockError

from banner_server.catalog import current_version
from banner_server.keys import Keys

from .pipeline import LoadResult
from .rules import selections_to_records

# Seconds a load's lock outlives its last renewal: how long a killed load blocks the
# next one.  Renewed every third of it, so a renewal may be late twice before it is lost.
LOAD_LEASE = 10.0


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


# The switch: SET current only while this load still holds the lock, in one step.
_SWITCH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[2], ARGV[2])
    return 1
end
return 0
"""


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


def publish(r: redis.Redis, keys: Keys, result: LoadResult, meta: dict, lock: LoadLock | None = None) -> str:
    """Publishes `result` under `lock` (taken here if None); returns the new version id.

    Order matters for readers: every key of the new version is written first, then
    `current` is switched with one SET, then superseded versions are removed.  A
    failure or a kill before the SET leaves the old version serving untouched; its
    leftovers are removed by the next successful load.  A failure after the SET
    raises CleanupFailed: the new version is current all the same.
    """
    if lock is None:
        with LoadLock(r, keys) as lock:
            return publish(r, keys, result, meta, lock)
    # The counter orders versions for people; the random part keeps an id from
    # ever being handed out twice when Redis loses its data (and the counter)
    # while workers still hold a snapshot of the old version under that id.
    ver = f"{r.incr(keys.version_seq)}-{secrets.token_hex(3)}"
    r.sadd(keys.versions, ver)
    try:
        _write_version(r, keys, ver, result, meta)
        switched = r.eval(_SWITCH, 2, keys.load_lock, keys.current, lock.token, ver)
    except redis.RedisError:
        _try_delete(r, keys, ver)
        raise
    if not switched:
        _try_delete(r, keys, ver)
        raise PublishError("this load lost its lock (paused longer than its lease, or Redis lost it) and "
                           "another load may have started: nothing published; load again")
    try:
        # Only this load can switch while it holds the lock: what is not current is old.
        current = current_version(r, keys)
        for old in r.smembers(keys.versions):
            if old.decode() not in (ver, current):
                _delete_version(r, keys, old.decode())
    except redis.RedisError as exc:
        raise CleanupFailed(ver, str(exc)) from exc
    return ver


def _try_delete(r: redis.Redis, keys: Keys, ver: str) -> None:
    try:
        _delete_version(r, keys, ver)
    except redis.RedisError:
        pass  # the next load removes what is left


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
