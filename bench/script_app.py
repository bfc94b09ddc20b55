"""The script-only app for `make bench`: the reference's fixed page plus one EVALSHA of
the server's own pick script (banner_server/layout/lua/pick.lua) with the keys the server
builds (banner_server.layout.keys.Keys), over its lean client, one connection per worker.
script/floor is the price of the script; server/script the price of the server's own
Python around it.

The script's arguments are laid out here as SelectionStore.pick lays them out; when
the script or its arguments change, the check at start fails loudly instead of
timing an error path: update `pick()` below to match the store."""

import sys

import falcon

from banner_server.clock import quarter_source, system_clock
from banner_server.config import Settings
from banner_server.clients.fast import FastRedis, pack
from banner_server.layout.keys import Keys
from banner_server.layout.scripts import PICK

from reference_app import PAGE

settings = Settings.from_env()
redis = FastRedis(settings.redis_url, settings.redis_timeout, settings.redis_connect_timeout)
script = redis.script(PICK.source)
TTL = str(settings.visitor_ttl)
# Read once per worker: every quarter is loaded, and a run crossing a quarter
# boundary only keeps drawing from the quarter it started in.
QUARTER = quarter_source(system_clock(settings.tz), settings.quarter)()
COOKIE = "visitor_id="
_base = Keys(settings.key_prefix)
keys = _base.with_groups(int(redis.roundtrip(pack(b"GET", _base.groups_key)) or 1))
VERSION = (redis.roundtrip(pack(b"GET", keys.current)) or b"").decode()


def pick(campaign: int, visitor: str):
    group = keys.group_of(visitor)
    return script(keys=[keys.group_currents[group], keys.selection_set(VERSION, QUARTER, campaign, group),
                        keys.visitor(visitor, group)], args=[VERSION, TTL])


def check() -> None:
    """The current version, read at start, and one pick that must draw from it."""
    if not VERSION:
        sys.exit("script_app: nothing is published in this Redis (run `banners load` first)")
    import redis as redis_py

    from banner_server.layout.catalog import read_selections

    _, records = read_selections(redis_py.Redis.from_url(settings.redis_url, socket_timeout=10), keys, VERSION)
    campaigns = sorted(r["campaign_id"] for r in records if r["quarter"] == QUARTER)
    if not campaigns:
        sys.exit(f"script_app: version {VERSION} has no campaign in quarter {QUARTER}")
    campaign = campaigns[0]
    got = pick(campaign, "c:bench-script-check")
    group = keys.group_of("c:bench-script-check")
    selection = set(redis.roundtrip(pack(b"SMEMBERS", keys.selection_set(VERSION, QUARTER, campaign, group))))
    if not (isinstance(got, list) and len(got) == 2 and got[0] == VERSION.encode() and got[1] in selection):
        sys.exit(f"script_app: pick.lua answered {got!r} for campaign {campaign} of version {VERSION}, "
                 "not [version, one of the selection]: its keys or arguments changed; update bench/script_app.py")


check()


class Script:
    def on_get(self, req, resp, campaign_id):
        # The raw Cookie header stands for the visitor, as in floor_app: the same
        # key as the server's for that visitor ("c:" + the cookie's id).
        visitor = (req.env.get("HTTP_COOKIE") or "")[len(COOKIE):]
        pick(int(campaign_id), "c:" + visitor)
        resp.data = PAGE
        resp.content_type = falcon.MEDIA_JSON


class Health:
    def on_get(self, req, resp):
        resp.data = b"ok"


application = falcon.App()
application.add_route("/campaigns/{campaign_id}", Script())
application.add_route("/healthz", Health())
