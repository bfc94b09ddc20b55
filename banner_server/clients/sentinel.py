"""The hot path's client of a Sentinel-watched master: master discovery and failover."""

from __future__ import annotations

import threading
from dataclasses import replace

from .errors import FastRedisError, FastReplyError
from .fast import FastRedis, pack
from .urls import SentinelTarget


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
                    reply = sentinel.roundtrip(
                        pack(b"SENTINEL", b"get-master-addr-by-name", self.target.master))
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
