"""Which Redis a URL names, and the client of the matching kind for it.

A `--redis-url` names one of three things:

- one Redis server: `redis://`, `rediss://` (TLS), `unix://`;
- any node of a Redis Cluster: the same schemes; the node is asked (`INFO cluster`)
  and a cluster is used when it says `cluster_enabled:1`, no flag needed;
- a master watched by Sentinel: `redis+sentinel://[user:pass@]host:port[,host:port…]/NAME`
  (`rediss+sentinel://` for TLS to sentinels and master).  The password in the URL is
  the master's; `?sentinel_password=` (and `sentinel_username=`) are the sentinels'.

`connect_client()` gives redis-py's client of the matching kind for everything off the
hot path.  `connect_fast()` gives the hot path's client: FastRedis for one server, and
for a cluster or a Sentinel set a client with the same `.script(src)(keys, args)` and
`.close()` that follows the topology (slot map, MOVED/ASK, failover).

Errors: a malformed URL raises ValueError at once.  A Redis that does not answer yet
does not: the client is built anyway and finds out what it talks to on first use, so a
server started before its Redis recovers without a restart.  The fast clients raise
FastRedisError when Redis cannot answer (down, timeout, failover in progress:
TRYAGAIN, CLUSTERDOWN, READONLY...) and FastReplyError (a subclass) for an error reply
from a reachable Redis; redis-py's raise CLIENT_ERRORS.
"""

from __future__ import annotations

import threading

import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from .cluster import ClusterFast, slot_map_addrs
from .errors import FastRedisError, FastReplyError
from .fast import FastRedis, pack
from .sentinel import SentinelFast
from .urls import SentinelTarget, check_url, is_sentinel_url, parse_sentinel_url, url_addr, url_db


def _cluster_enabled(info) -> bool:
    if isinstance(info, dict):  # redis-py's parsed INFO
        return bool(info.get("cluster_enabled"))
    return b"cluster_enabled:1" in info


# -- redis-py clients (everything but the hot path) -----------------------------------------

def _client_options(timeout: float, connect_timeout: float | None) -> dict:
    return dict(
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout or timeout,
        health_check_interval=0,
        # One immediate retry on a connection Redis closed while idle; redis-py's
        # default (several retries with backoff) would stall a worker on a dead Redis.
        retry=Retry(NoBackoff(), 1),
    )


def connect_client(url: str, timeout: float, connect_timeout: float | None = None):
    """redis-py's client for `url`: redis.Redis, redis.cluster.RedisCluster, or a
    Sentinel-managed redis.Redis that follows the master.  ValueError for a bad URL.

    When the node cannot be reached yet, a LazyClient stands in: it raises
    redis.ConnectionError on use until the node answers, then becomes the right kind."""
    check_url(url)
    if is_sentinel_url(url):
        return _sentinel_client(parse_sentinel_url(url), timeout, connect_timeout)
    try:
        return _detect_client(url, timeout, connect_timeout)
    except (redis.ConnectionError, redis.TimeoutError):
        return LazyClient(url, timeout, connect_timeout)


def _detect_client(url: str, timeout: float, connect_timeout: float | None):
    options = _client_options(timeout, connect_timeout)
    client = redis.Redis.from_url(url, **options)
    try:
        info = client.info("cluster")
    except redis.ResponseError:  # INFO refused by an ACL: not worth failing over
        return client
    except BaseException:
        client.close()
        raise
    if not _cluster_enabled(info):
        return client
    try:
        if url_db(url):
            raise ValueError("a Redis Cluster has only database 0: drop the database from the URL")
        # Every node the cluster reports seeds the client: it can start from any of them.
        seeds = slot_map_addrs(client.execute_command("CLUSTER", "SLOTS"), url_addr(url))
    finally:
        client.close()
    return _cluster_client(url, seeds, timeout, connect_timeout)

def _cluster_client(url: str, seeds, timeout: float, connect_timeout: float | None):
    from redis.cluster import ClusterNode, RedisCluster

    kwargs = {k: v for k, v in parse_url(url).items() if k not in ("host", "port", "path", "db", "connection_class")}
    if url.startswith("rediss://"):
        kwargs["ssl"] = True
    options = _client_options(timeout, connect_timeout)
    options.pop("health_check_interval")
    try:
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in seeds], **kwargs, **options)
    except RedisClusterException as exc:  # no seed answered CLUSTER SLOTS: unreachable
        raise redis.ConnectionError(f"Redis Cluster: {exc}") from exc


def _sentinel_client(target: SentinelTarget, timeout: float, connect_timeout: float | None):
    from redis.sentinel import Sentinel

    options = _client_options(timeout, connect_timeout)
    tls = target.tls_kwargs()
    sentinel_kwargs = {"socket_timeout": options["socket_timeout"],
                       "socket_connect_timeout": options["socket_connect_timeout"], **tls}
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    if target.sentinel_username:
        sentinel_kwargs["username"] = target.sentinel_username
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    # The pool asks the sentinels for the master on each new connection, and drops its
    # connection on a READONLY reply (an old master now a replica), so a failover costs
    # the command that saw it, and redis-py's one retry usually absorbs that.
    return sentinel.master_for(target.master, username=target.username, password=target.password,
                               db=target.db, **options, **tls)


class LazyClient:
    """Stands in for redis-py's client while the URL's node has not answered: whether it
    is a cluster is only known once it does.  Each use tries again; until then it raises
    redis.ConnectionError (the node's own error), as a client of a Redis that is down."""

    def __init__(self, url: str, timeout: float, connect_timeout: float | None = None):
        self._args = (url, timeout, connect_timeout)
        self._client = None
        self._lock = threading.Lock()

    def resolve(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = _detect_client(*self._args)
                    except ValueError as exc:  # a cluster with a database: say it on use
                        raise redis.ResponseError(str(exc)) from None
        return self._client

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_args", "_client", "_lock"):
            raise AttributeError(name)  # copy/pickle probes, or __init__ not run yet
        return getattr(self.resolve(), name)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- the hot path -------------------------------------------------------------------------------

def connect_fast(url: str, timeout: float, connect_timeout: float | None = None, *, check_slots: bool = False):
    """The hot path's client for `url`: FastRedis for one server, ClusterFast for a
    cluster, SentinelFast for a Sentinel set; ValueError for a bad URL.  All have
    `.script(source)` -> callable(keys, args) and `.close()`.

    When the node cannot be reached yet, a LazyFast stands in and decides on the first
    call that gets an answer (until then calls raise FastRedisError).
    check_slots (tests): a cluster call whose keys lie in two slots raises ValueError."""
    check_url(url)
    if is_sentinel_url(url):
        return SentinelFast(parse_sentinel_url(url), timeout, connect_timeout)
    try:
        return _detect_fast(url, timeout, connect_timeout, check_slots)
    except FastRedisError:
        return LazyFast(url, timeout, connect_timeout, check_slots)


def _detect_fast(url: str, timeout: float, connect_timeout: float | None, check_slots: bool):
    probe = FastRedis(url, timeout, connect_timeout)
    try:
        try:
            info = probe.roundtrip(pack(b"INFO", b"cluster"))
        except FastReplyError as exc:
            if str(exc).startswith("NOPERM"):  # INFO refused by an ACL: take it as one server
                return probe
            raise
        if not _cluster_enabled(info):
            return probe
        if url_db(url):
            raise ValueError("a Redis Cluster has only database 0: drop the database from the URL")
        queried = url_addr(url)
        slots = probe.roundtrip(pack(b"CLUSTER", b"SLOTS"))
        return ClusterFast(url, timeout, connect_timeout, slots=slots, queried=queried, check_slots=check_slots)
    finally:
        # The probe's connection is not kept: a client built before a fork (gunicorn's
        # preload) must not share a socket between processes.
        probe.close()


class LazyFast:
    """Stands in for the fast client while the URL's node has not answered."""

    def __init__(self, url: str, timeout: float, connect_timeout: float | None = None, check_slots: bool = False):
        self._args = (url, timeout, connect_timeout, check_slots)
        self._impl = None
        self._lock = threading.Lock()

    def resolve(self):
        if self._impl is None:
            with self._lock:
                if self._impl is None:
                    try:
                        self._impl = _detect_fast(*self._args)
                    except ValueError as exc:
                        raise FastReplyError(str(exc)) from None
        return self._impl

    def script(self, source: str) -> "_LazyScript":
        return _LazyScript(self, source)

    def close(self) -> None:
        if self._impl is not None:
            self._impl.close()


class _LazyScript:
    __slots__ = ("owner", "source", "_script")

    def __init__(self, owner: LazyFast, source: str):
        self.owner, self.source, self._script = owner, source, None

    def __call__(self, keys: list, args: list):
        script = self._script
        if script is None:
            script = self._script = self.owner.resolve().script(self.source)
        return script(keys, args)


