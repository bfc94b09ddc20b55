"""The Lua scripts of the key layout: one file each in lua/, read once at import.

Every file opens with its `-- KEYS[i] = …` and `-- ARGV[i] = …` lines (a test holds
each script to them: every key it touches is declared in KEYS, so it runs on a Redis
Cluster as on one Redis).  `bind(client, script)` is the one way to get a callable
`(keys, args)` for it from either kind of client: redis-py's (`register_script`:
EVALSHA, EVAL on NOSCRIPT) or the hot path's fast clients (`.script`: the same, with
the command head packed once).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LUA_DIR = Path(__file__).with_name("lua")


@dataclass(frozen=True)
class Script:
    name: str
    source: str


def _read(name: str) -> Script:
    return Script(name, (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8"))


# The request path: draw a banner and remember it (pick), or remember the banner a
# worker drew from its snapshot (record).
PICK = _read("pick")
RECORD = _read("record")
# What is recorded after a banner was shown (layout/events.py).
RECORD_CLICK = _read("record_click")
RECORD_CONVERSION = _read("record_conversion")
# Publishing (loader/publish.py).
SWITCH = _read("switch")
ROLLBACK = _read("rollback")
UNLIST = _read("unlist")

ALL = (PICK, RECORD, RECORD_CLICK, RECORD_CONVERSION, SWITCH, ROLLBACK, UNLIST)


def bind(client, script: Script):
    """A callable `(keys, args)` running `script` on `client`, of either kind."""
    # Asked of the class: a redis-py LazyClient (a Redis not reached yet) answers any
    # attribute by connecting first.
    if getattr(type(client), "script", None) is not None:  # the hot path's clients
        return client.script(script.source)
    return _Registered(client, script.source)


class _Registered:
    """redis-py's Script for a source, made on its first call: redis-py asks the client
    for its encoder when a script is registered, and a LazyClient can only answer that
    from Redis, so a server built while Redis is down must not register at start (its
    first call meets the connection error like any other)."""

    __slots__ = ("client", "source", "script")

    def __init__(self, client, source: str):
        self.client, self.source, self.script = client, source, None

    def __call__(self, keys=(), args=()):
        if self.script is None:
            self.script = self.client.register_script(self.source)
        return self.script(keys=list(keys), args=list(args))
