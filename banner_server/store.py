"""The server's view of the published selections: one atomic Redis step per request,
with the worker's last snapshot as the answer when Redis is away."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import redis

from .catalog import current_version, read_selections, snapshot
from .fastredis import FastRedis, FastRedisError
from .keys import Keys

# One round trip: resolve the current version, draw a banner of the campaign's
# selection with SRANDMEMBER that is not the visitor's last one (rejection sampling,
# so the draw stays uniform over the others), remember it.  The version and the set
# are read in the same atomic step, so no answer can mix two loads.
# Keys of the selection are derived inside the script; fine on a single Redis.
PICK_LUA = """
local ver = redis.call('GET', KEYS[1])
if not ver then return {'', ''} end
local set = ARGV[1] .. ver .. ':q:' .. ARGV[2] .. ':c:' .. ARGV[3]
local pick = redis.call('SRANDMEMBER', set)
if not pick then return {ver, ''} end
local last = redis.call('GET', KEYS[2])
if pick == last and redis.call('SCARD', set) > 1 then
  for i = 1, 32 do
    pick = redis.call('SRANDMEMBER', set)
    if pick ~= last then break end
  end
  if pick == last then
    for _, m in ipairs(redis.call('SMEMBERS', set)) do
      if m ~= last then pick = m break end
    end
  end
end
redis.call('SET', KEYS[2], pick, 'EX', ARGV[4])
if KEYS[3] then redis.call('SET', KEYS[3], pick, 'EX', ARGV[4]) end
return {ver, pick}
"""

_LOCAL_VISITORS = 100_000  # degraded-mode memory of last banners, per worker


class NoData(Exception):
    """Nothing to answer from: Redis is away (or empty) and this worker never saw data."""


class NotFound(Exception):
    """No selection for that campaign in that quarter."""


@dataclass
class Pick:
    banner_id: int
    version: str
    degraded: str | None = None  # why Redis was not used: "redis_unreachable" | "redis_empty"


def make_client(url: str, timeout: float, connect_timeout: float | None = None) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout or timeout,
        health_check_interval=0,
        retry_on_timeout=False,
    )


REDIS_ERRORS = (redis.RedisError, FastRedisError)


class Backoff:
    """After a failure, refuse for `every` seconds, then let one attempt through (and
    refuse again until it reports back)."""

    def __init__(self, every: float, monotonic):
        self.every = every
        self.monotonic = monotonic
        self.failed_at: float | None = None

    def ready(self) -> bool:
        if self.failed_at is None:
            return True
        now = self.monotonic()
        if now - self.failed_at >= self.every:
            self.failed_at = now
            return True
        return False

    def failed(self) -> None:
        self.failed_at = self.monotonic()


class SelectionStore:
    """`client` (redis-py) reads snapshots and answers /readyz; `fast`, when given,
    runs the per-request pick (see fastredis: a third of the CPU of redis-py)."""

    def __init__(self, client: redis.Redis, keys: Keys, visitor_ttl: int = 86400,
                 retry_after: float = 1.0, monotonic=time.monotonic, rng: random.Random | None = None,
                 fast: FastRedis | None = None):
        self.r = client
        self.keys = keys
        self.ttl = str(visitor_ttl)
        self.rng = rng or random.Random()
        self._pick = fast.script(PICK_LUA) if fast is not None else client.register_script(PICK_LUA)
        self._version_prefix = keys.prefix + "v:"
        self.version: str | None = None
        self.selections: dict[int, dict[int, tuple[int, ...]]] | None = None
        self.quarters: tuple[int, ...] = ()
        # After a failure, answer from the snapshot for retry_after seconds instead of
        # paying a timeout on every request; then let one request probe Redis again.
        self._redis_backoff = Backoff(retry_after, monotonic)
        # A snapshot that failed to load (too big for the timeout, say) is retried as
        # rarely, not by every request: the picks themselves still go to Redis.
        self._follow_backoff = Backoff(retry_after, monotonic)
        self.last_error: str | None = None
        self._local_last: dict[str, int] = {}

    # -- health ----------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        return self._redis_backoff.failed_at is not None

    def _failed(self, exc: Exception, backoff: Backoff | None = None) -> None:
        (backoff or self._redis_backoff).failed()
        self.last_error = f"{type(exc).__name__}: {exc}"

    # -- snapshot --------------------------------------------------------------
    def refresh(self, version: str | None = None) -> None:
        """Loads `version` (default: current) into the worker's snapshot."""
        if version is None:
            version = current_version(self.r, self.keys)
            if version is None:
                # Keep the snapshot (degraded answers need it); only forget the version.
                self.version = None
                return
        if version == self.version and self.selections is not None:
            return
        found, records = read_selections(self.r, self.keys, version)
        if found is None:
            return  # superseded between the pick and this read; the next pick tells
        self.selections = snapshot(records)
        self.quarters = tuple(sorted(self.selections))
        self.version = version

    def ensure_snapshot(self) -> None:
        """Brings the snapshot up to the current version (one GET when it already is)."""
        if self._redis_backoff.ready():
            try:
                self.refresh()
                self._redis_backoff.failed_at = None
            except redis.RedisError as exc:
                self._failed(exc)

    def campaigns(self, quarter: int) -> list[int]:
        self.ensure_snapshot()
        return sorted((self.selections or {}).get(quarter, {}))

    # -- the hot path ----------------------------------------------------------
    def pick(self, quarter: int, campaign: int, visitor: str, carry_to: str | None = None) -> Pick:
        if self._redis_backoff.ready():
            keys = [self.keys.current, self.keys.visitor(visitor)]
            if carry_to:
                keys.append(self.keys.visitor(carry_to))
            try:
                ver, banner = self._pick(keys=keys, args=[self._version_prefix, quarter, campaign, self.ttl])
                self._redis_backoff.failed_at = None
            except REDIS_ERRORS as exc:
                self._failed(exc)
            else:
                if not ver:
                    # Redis answers but holds nothing (restarted empty, flushed): keep
                    # serving what this worker last saw until a load publishes again.
                    return self._pick_from_snapshot(quarter, campaign, visitor, carry_to, "redis_empty")
                version = ver.decode()
                if version != self.version and self._follow_backoff.ready():
                    self._follow(version)
                if not banner:
                    raise NotFound
                banner_id = int(banner)
                self._remember(visitor, carry_to, banner_id)
                # The version the script drew from, even if the snapshot lags behind it.
                return Pick(banner_id, version)
        return self._pick_from_snapshot(quarter, campaign, visitor, carry_to, "redis_unreachable")

    def _follow(self, version: str) -> None:
        """A new load is current: take its snapshot (once per version and worker)."""
        try:
            self.refresh(version)
            self._follow_backoff.failed_at = None
        except REDIS_ERRORS as exc:
            self._failed(exc, self._follow_backoff)

    def _remember(self, visitor: str, carry_to: str | None, banner_id: int) -> None:
        local = self._local_last
        if len(local) >= _LOCAL_VISITORS:
            local.clear()  # a crude bound; it only serves the degraded mode
        local[visitor] = banner_id
        if carry_to:
            local[carry_to] = banner_id

    def _pick_from_snapshot(self, quarter: int, campaign: int, visitor: str, carry_to: str | None,
                            reason: str) -> Pick:
        if self.selections is None:
            if reason == "redis_empty":
                raise NoData("nothing is published yet")
            raise NoData(f"Redis is unreachable ({self.last_error})")
        banners = self.selections.get(quarter, {}).get(campaign)
        if not banners:
            raise NotFound
        last = self._local_last.get(visitor)
        choices = [b for b in banners if b != last] or list(banners)
        banner_id = self.rng.choice(choices)
        self._remember(visitor, carry_to, banner_id)
        return Pick(banner_id, self.version or "", reason)

    # -- readiness -------------------------------------------------------------
    def readiness(self) -> tuple[bool, dict]:
        try:
            self.refresh()  # reads `current`: as much a liveness check as a PING
            self._redis_backoff.failed_at = None
        except redis.RedisError as exc:
            self._failed(exc)
            return False, {
                "status": "degraded",
                "reason": f"redis unreachable: {self.last_error}",
                "serving_from_snapshot": self.selections is not None,
                "version": self.version,
            }
        if self.version is None:
            return False, {"status": "not_ready", "reason": "nothing published yet: run `banners load`"}
        missing = [q for q in (1, 2, 3, 4) if q not in self.quarters]
        if missing:
            return False, {"status": "not_ready", "reason": f"quarters not loaded: {missing}",
                           "version": self.version}
        return True, {"status": "ready", "version": self.version, "quarters": list(self.quarters)}
