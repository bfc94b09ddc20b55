"""Which Redis a URL names, and the clients that talk to it.

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

import hashlib
import random
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.crc import key_slot
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from .fastredis import FastRedis, FastRedisError, FastReplyError, _pack

# What redis-py's clients of every kind raise: RedisCluster's own exceptions (slot not
# covered, no node reachable at start) are not RedisError.
CLIENT_ERRORS = (redis.RedisError, RedisClusterException)

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
_SENTINEL_QUERY = {"sentinel_password", "sentinel_username", "db", "ssl_cert_reqs", "ssl_ca_certs"}
SLOTS = 16384
# MOVED/ASK followed per call: a migration costs one or two; more means the cluster's
# nodes disagree, which is not worth more round trips than the caller's budget.
MAX_REDIRECTS = 3
# Nodes asked for the slot map after a failure, each costing up to connect_timeout.
REFRESH_TRIES = 3
# Error replies that mean "not now" (the cluster or a failover is in flux), not "your
# command is wrong": reported as FastRedisError, so the caller degrades and retries.
_NOT_NOW = ("TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "LOADING", "READONLY")
_ASKING = _pack(b"ASKING")


# -- URLs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SentinelTarget:
    """A parsed redis+sentinel:// URL."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    ssl_cert_reqs: str | None = None
    ssl_ca_certs: str | None = None

    def _url(self, host: str, port: int, username, password, db: int = 0) -> str:
        """A FastRedis URL for one server of the set."""
        userinfo = ""
        if password is not None or username is not None:
            userinfo = f"{quote(username or '', safe='')}:{quote(password or '', safe='')}@"
        query = {k: v for k, v in (("ssl_cert_reqs", self.ssl_cert_reqs), ("ssl_ca_certs", self.ssl_ca_certs)) if v}
        host = f"[{host}]" if ":" in host else host
        url = f"{'rediss' if self.tls else 'redis'}://{userinfo}{host}:{port}/{db}"
        return f"{url}?{urlencode(query)}" if query else url

    def master_url(self, host: str, port: int) -> str:
        return self._url(host, port, self.username, self.password, self.db)

    def sentinel_url(self, host: str, port: int) -> str:
        return self._url(host, port, self.sentinel_username, self.sentinel_password)

    def tls_kwargs(self) -> dict:
        if not self.tls:
            return {}
        out = {"ssl": True}
        if self.ssl_cert_reqs:
            out["ssl_cert_reqs"] = self.ssl_cert_reqs
        if self.ssl_ca_certs:
            out["ssl_ca_certs"] = self.ssl_ca_certs
        return out


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelTarget:
    """redis+sentinel://[user:pass@]host[:port][,host[:port]…]/MASTER_NAME[/DB][?…];
    raises ValueError saying what is wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL (expected {' or '.join(s + '://' for s in SENTINEL_SCHEMES)})")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    sentinels = []
    for item in hostlist.split(","):
        item = item.strip()
        if not item:
            raise ValueError("a Sentinel URL needs host:port of one or more sentinels, comma separated")
        if item.startswith("["):  # [::1]:26379
            host, _, rest = item[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
            if rest and not rest.startswith(":"):
                raise ValueError(f"sentinel address {item!r} is not host:port")
        else:
            host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
        try:
            port = int(port_text) if port_text else 26379
        except ValueError:
            raise ValueError(f"sentinel address {item!r}: the port is not a number") from None
        if not host or not 0 < port < 65536:
            raise ValueError(f"sentinel address {item!r} is not host:port")
        sentinels.append((unquote(host), port))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("a Sentinel URL names the master after the hosts: redis+sentinel://host:port/MASTER_NAME")
    if len(path) > 2:
        raise ValueError(f"a Sentinel URL's path is /MASTER_NAME or /MASTER_NAME/DB, not {parts.path!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - _SENTINEL_QUERY
    if unknown:
        raise ValueError(f"unknown Sentinel URL parameter(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(_SENTINEL_QUERY))})")
    db_text = query.get("db") or (path[1] if len(path) > 1 else "0")
    try:
        db = int(db_text)
    except ValueError:
        raise ValueError(f"the database {db_text!r} is not a number") from None
    if db < 0:
        raise ValueError(f"the database {db} is negative")
    username = password = None
    if userinfo:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    return SentinelTarget(tuple(sentinels), path[0], SENTINEL_SCHEMES[scheme], username, password, db,
                          query.get("sentinel_username") or None, query.get("sentinel_password") or None,
                          query.get("ssl_cert_reqs") or None, query.get("ssl_ca_certs") or None)


def check_url(url: str) -> None:
    """Raises ValueError with a clear message when `url` is no Redis URL we can use:
    a Sentinel URL, or one that config.parse_redis_url (the project's one reading of a
    single server's URL) accepts."""
    from .config import parse_redis_url

    if is_sentinel_url(url):
        parse_sentinel_url(url)
        return
    try:
        parse_redis_url(url)
    except ValueError as exc:
        raise ValueError(f"{exc} (or redis+sentinel://host:port/MASTER_NAME)"
                         if "scheme" in str(exc) else str(exc)) from None


def _url_db(url: str) -> int:
    return int(parse_url(url).get("db") or 0)


def _node_url(url: str, host: str, port: int) -> str:
    """The URL of another node of the cluster `url` names: same scheme (unix:// becomes
    redis://: nodes announce TCP addresses), credentials and TLS settings."""
    parts = urlsplit(url)
    scheme = "rediss" if parts.scheme == "rediss" else "redis"
    userinfo = parts.netloc.rpartition("@")[0]
    query = [(k, v) for k, vs in parse_qs(parts.query).items() if k != "db" for v in vs]
    host = f"[{host}]" if ":" in host else host
    return (f"{scheme}://{userinfo + '@' if userinfo else ''}{host}:{port}"
            + (f"?{urlencode(query)}" if query else ""))


def _url_addr(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return None
    return (parts.hostname or "127.0.0.1", parts.port or 6379)


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
        if _url_db(url):
            raise ValueError("a Redis Cluster has only database 0: drop the database from the URL")
        # Every node the cluster reports seeds the client: it can start from any of them.
        seeds = _slot_map_addrs(client.execute_command("CLUSTER", "SLOTS"), _url_addr(url))
    finally:
        client.close()
    return _cluster_client(url, seeds, timeout, connect_timeout)


def _slot_map_addrs(reply, queried) -> list[tuple[str, int]]:
    addrs = []
    for entry in reply:
        for node in entry[2:]:
            addr = _entry_addr(node, queried)
            if addr not in addrs:
                addrs.append(addr)
    return addrs


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
            info = probe._roundtrip(_pack(b"INFO", b"cluster"))
        except FastReplyError as exc:
            if str(exc).startswith("NOPERM"):  # INFO refused by an ACL: take it as one server
                return probe
            raise
        if not _cluster_enabled(info):
            return probe
        if _url_db(url):
            raise ValueError("a Redis Cluster has only database 0: drop the database from the URL")
        queried = _url_addr(url)
        slots = probe._roundtrip(_pack(b"CLUSTER", b"SLOTS"))
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


# -- Redis Cluster -----------------------------------------------------------------------------

def _as_bytes(key) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()


def _entry_addr(entry, queried) -> tuple[str, int]:
    """A node of a CLUSTER SLOTS reply: [ip, port, id, …]; an empty ip means the node
    that answered (it does not know its own address)."""
    host = entry[0].decode() if isinstance(entry[0], bytes) else str(entry[0])
    if host in ("", "?") and queried is not None:
        host = queried[0]
    return (host or "127.0.0.1", int(entry[1]))


def _redirect_addr(message: str) -> tuple[str, int]:
    # "MOVED 3999 127.0.0.1:6381" / "ASK 3999 [::1]:6381"
    hostport = message.split(" ")[2]
    host, _, port = hostport.rpartition(":")
    return (host.strip("[]"), int(port))


class ClusterFast:
    """The hot path's client of a Redis Cluster: one FastRedis per node (each with one
    connection per thread), the slot map from CLUSTER SLOTS, and each call sent to the
    master of its keys' slot.

    MOVED (a slot moved for good): the whole map is loaded again and the call goes to the
    named node.  ASK (a slot half-way through a migration): ASKING and the call go to the
    named node in one write; the map is kept.  A connection error or timeout on a node:
    the map is loaded from another node, and when it names a new master for the slot (a
    replica took over) the call is tried there once.  At most MAX_REDIRECTS redirects.
    """

    def __init__(self, url: str, timeout: float, connect_timeout: float | None = None, *,
                 slots=None, queried: tuple[str, int] | None = None, check_slots: bool = False):
        self.url = url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.check_slots = check_slots
        self._nodes: dict[tuple[str, int], FastRedis] = {}
        self._slots: list[FastRedis | None] = [None] * SLOTS
        self._known: list[tuple[str, int]] = [queried] if queried else []
        self._generation = 0  # bumped by each map load; tells a thread whether one happened
        self._lock = threading.Lock()
        if slots is not None:
            self._load(slots, queried)

    # -- the map ------------------------------------------------------------------------
    def _node(self, addr: tuple[str, int]) -> FastRedis:
        node = self._nodes.get(addr)
        if node is None:
            node = self._nodes.setdefault(
                addr, FastRedis(_node_url(self.url, *addr), self.timeout, self.connect_timeout))
        return node

    def _addr_of(self, node: FastRedis) -> tuple[str, int] | None:
        return next((a for a, n in self._nodes.items() if n is node), None)

    def _load(self, reply, queried) -> None:
        slots: list[FastRedis | None] = [None] * SLOTS
        known = []
        for entry in reply:
            start, end = int(entry[0]), int(entry[1])
            master = _entry_addr(entry[2], queried)
            slots[start:end + 1] = [self._node(master)] * (end - start + 1)
            for node in entry[2:]:
                addr = _entry_addr(node, queried)
                if addr not in known:
                    known.append(addr)
        # One reference swap: threads calling meanwhile see the old map or the new one.
        self._slots = slots
        self._known = known or self._known
        self._generation += 1

    def refresh(self, seen: int | None = None, first: tuple[str, int] | None = None,
                avoid: tuple[str, int] | None = None) -> bool:
        """Loads the slot map from `first`, else from other known nodes (not `avoid`);
        skipped when another thread loaded one since generation `seen`.  True when a
        map is loaded (or was, meanwhile)."""
        with self._lock:
            if seen is not None and self._generation != seen:
                return True
            others = [a for a in self._known if a != first and a != avoid]
            random.shuffle(others)
            candidates = ([first] if first else []) + others
            if avoid and avoid not in candidates:
                candidates.append(avoid)  # the only one left may be the one that failed
            for addr in candidates[:REFRESH_TRIES + (1 if first else 0)]:
                try:
                    reply = self._node(addr)._roundtrip(_pack(b"CLUSTER", b"SLOTS"))
                except FastRedisError:
                    continue
                if reply:
                    self._load(reply, addr)
                    return True
            return False

    def owner(self, key) -> tuple[str, int] | None:
        """The address this client sends `key` to (tests, diagnostics)."""
        node = self._slots[key_slot(_as_bytes(key))]
        return None if node is None else self._addr_of(node)

    # -- calls -------------------------------------------------------------------------------
    def script(self, source: str) -> "ClusterScript":
        return ClusterScript(self, source)

    def _any_master(self) -> FastRedis | None:
        return next((n for n in self._slots if n is not None), None)

    def _run(self, slot: int | None, script: "ClusterScript", keys: list, args: list):
        seen = self._generation
        node = self._slots[slot] if slot is not None else self._any_master()
        if node is None:
            self.refresh(seen)
            seen = self._generation
            node = self._slots[slot] if slot is not None else self._any_master()
            if node is None:
                raise FastRedisError(f"no node of the cluster serves slot {slot}")
        evalsha = _pack(b"EVALSHA", script.sha, len(keys), *keys, *args)
        asking = False
        redirects = 0
        retried = False
        while True:
            try:
                if asking:
                    return self._ask(node, script, evalsha, keys, args)
                try:
                    return node._roundtrip(evalsha)
                except FastReplyError as exc:
                    if not str(exc).startswith("NOSCRIPT"):
                        raise
                return node._roundtrip(_pack(b"EVAL", script.source, len(keys), *keys, *args))
            except FastReplyError as exc:
                message = str(exc)
                head = message.split(" ", 1)[0]
                if head in ("MOVED", "ASK"):
                    redirects += 1
                    if redirects > MAX_REDIRECTS:
                        raise FastRedisError(f"still redirected after {MAX_REDIRECTS} redirects: {message}") from None
                    addr = _redirect_addr(message)
                    if head == "MOVED":
                        self.refresh(seen, first=addr)
                        seen = self._generation
                    asking = head == "ASK"
                    node = self._node(addr)
                    continue
                if head in _NOT_NOW:
                    raise FastRedisError(message) from None
                raise
            except FastRedisError:
                # The node is down or frozen.  Worth one more try only where the map now
                # names another master for the slot (its replica took over); else the
                # caller degrades rather than waiting on the same node twice.
                if retried:
                    raise
                retried = True
                self.refresh(seen, avoid=self._addr_of(node))
                seen = self._generation
                new = self._slots[slot] if slot is not None else self._any_master()
                if new is None or new is node:
                    raise
                node, asking = new, False

    @staticmethod
    def _ask(node: FastRedis, script: "ClusterScript", evalsha: bytes, keys: list, args: list):
        reply = node._exchange(_ASKING + evalsha, 2)[1]
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            reply = node._exchange(_ASKING + _pack(b"EVAL", script.source, len(keys), *keys, *args), 2)[1]
        if isinstance(reply, hiredis.ReplyError):
            raise FastReplyError(str(reply))
        return reply

    def close(self) -> None:
        for node in list(self._nodes.values()):
            node.close()


class ClusterScript:
    __slots__ = ("cluster", "source", "sha")

    def __init__(self, cluster: ClusterFast, source: str):
        self.cluster = cluster
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()

    def __call__(self, keys: list, args: list):
        cluster = self.cluster
        if keys:
            slot = key_slot(_as_bytes(keys[0]))
            if cluster.check_slots:
                slots = {key_slot(_as_bytes(k)) for k in keys}
                if len(slots) > 1:
                    raise ValueError(f"keys {keys!r} lie in {len(slots)} slots: a cluster call needs one")
        else:
            slot = None
        return cluster._run(slot, self, keys, args)


# -- Sentinel ---------------------------------------------------------------------------------

def _is_readonly(message: str) -> bool:
    # A write refused by a replica: plain, or quoted inside a script error (Redis 6).
    return message.startswith("READONLY") or "-READONLY " in message or ": READONLY " in message


class SentinelFast:
    """The hot path's client of a Sentinel-watched master: asks the sentinels for its
    address (SENTINEL get-master-addr-by-name) and talks to it with FastRedis.  After a
    connection error or a READONLY reply (the master was demoted), asks again and, when
    they name another server, tries the call there once."""

    def __init__(self, target: SentinelTarget, timeout: float, connect_timeout: float | None = None):
        self.target = target
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._sentinels = [FastRedis(target.sentinel_url(h, p), timeout, connect_timeout)
                           for h, p in target.sentinels]
        self._master: FastRedis | None = None
        self.master_addr: tuple[str, int] | None = None
        self._lock = threading.Lock()

    def discover(self, seen: FastRedis | None = None) -> FastRedis:
        """The master's client, after asking the sentinels (unless another thread did
        since `seen` was current).  FastRedisError when no sentinel names one."""
        with self._lock:
            if self._master is not None and self._master is not seen:
                return self._master
            errors = []
            for i, sentinel in enumerate(self._sentinels):
                try:
                    reply = sentinel._roundtrip(
                        _pack(b"SENTINEL", b"get-master-addr-by-name", self.target.master))
                except FastRedisError as exc:
                    errors.append(f"{self.target.sentinels[i][0]}:{self.target.sentinels[i][1]}: {exc}")
                    continue
                if not reply:
                    errors.append(f"{self.target.sentinels[i][0]}:{self.target.sentinels[i][1]}: "
                                  f"does not know {self.target.master!r}")
                    continue
                addr = (reply[0].decode(), int(reply[1]))
                if i:  # ask the one that answered first next time
                    self._sentinels.insert(0, self._sentinels.pop(i))
                    self.target = _reorder(self.target, i)
                if addr != self.master_addr or self._master is None:
                    old = self._master
                    self._master = FastRedis(self.target.master_url(*addr), self.timeout, self.connect_timeout)
                    self.master_addr = addr
                    if old is not None:
                        old.close()
                return self._master
            raise FastRedisError(f"no sentinel names a master {self.target.master!r}: {'; '.join(errors)}")

    def script(self, source: str) -> "SentinelScript":
        return SentinelScript(self, source)

    def close(self) -> None:
        if self._master is not None:
            self._master.close()
        for sentinel in self._sentinels:
            sentinel.close()


def _reorder(target: SentinelTarget, i: int) -> SentinelTarget:
    from dataclasses import replace

    hosts = list(target.sentinels)
    hosts.insert(0, hosts.pop(i))
    return replace(target, sentinels=tuple(hosts))


class SentinelScript:
    __slots__ = ("owner", "source", "_bound")

    def __init__(self, owner: SentinelFast, source: str):
        self.owner = owner
        self.source = source
        self._bound: tuple = (None, None)  # (master client, its FastScript)

    def _bind(self, master: FastRedis):
        bound = self._bound = (master, master.script(self.source))
        return bound[1]

    def __call__(self, keys: list, args: list):
        owner = self.owner
        master = owner._master or owner.discover()
        bound = self._bound
        script = bound[1] if bound[0] is master else self._bind(master)
        try:
            return script(keys, args)
        except FastReplyError as exc:
            if not _is_readonly(str(exc)):
                raise
            failed = FastRedisError(str(exc))
        except FastRedisError as exc:
            failed = exc
        new = owner.discover(seen=master)
        if new is master:
            raise failed
        return self._bind(new)(keys, args)
