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
    register = getattr(client, "register_script", None)
    if register is not None:
        return register(script.source)
    return client.script(script.source)
