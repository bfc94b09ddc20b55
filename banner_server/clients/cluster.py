"""The hot path's client of a Redis Cluster: slot routing, MOVED/ASK and failover.

One FastRedis per node, the slot map from CLUSTER SLOTS, and each call sent to the
master of its keys' slot (every key of one call lies in one slot: the Lua scripts
declare them all and the key layout gives them one hash tag).
"""

from __future__ import annotations

import hashlib
import random
import threading

import hiredis
from redis.crc import key_slot

from .errors import FastRedisError, FastReplyError
from .fast import FastRedis, pack
from .urls import node_url

SLOTS = 16384
# MOVED/ASK followed per call: a migration costs one or two; more means the cluster's
# nodes disagree, which is not worth more round trips than the caller's budget.
MAX_REDIRECTS = 3
# Nodes asked for the slot map after a failure, each costing up to connect_timeout.
REFRESH_TRIES = 3
# Error replies that mean "not now" (the cluster or a failover is in flux), not "your
# command is wrong": reported as FastRedisError, so the caller degrades and retries.
_NOT_NOW = ("TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "LOADING", "READONLY")
_ASKING = pack(b"ASKING")


def slot_map_addrs(reply, queried) -> list[tuple[str, int]]:
    """Every node of a CLUSTER SLOTS reply, masters and replicas, once each."""
    addrs = []
    for entry in reply:
        for node in entry[2:]:
            addr = _entry_addr(node, queried)
            if addr not in addrs:
                addrs.append(addr)
    return addrs


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
                addr, FastRedis(node_url(self.url, *addr), self.timeout, self.connect_timeout))
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
                    reply = self._node(addr).roundtrip(pack(b"CLUSTER", b"SLOTS"))
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
        evalsha = pack(b"EVALSHA", script.sha, len(keys), *keys, *args)
        asking = False
        redirects = 0
        retried = False
        while True:
            try:
                if asking:
                    return self._ask(node, script, evalsha, keys, args)
                try:
                    return node.roundtrip(evalsha)
                except FastReplyError as exc:
                    if not str(exc).startswith("NOSCRIPT"):
                        raise
                return node.roundtrip(pack(b"EVAL", script.source, len(keys), *keys, *args))
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
        reply = node.exchange(_ASKING + evalsha, 2)[1]
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            reply = node.exchange(_ASKING + pack(b"EVAL", script.source, len(keys), *keys, *args), 2)[1]
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

