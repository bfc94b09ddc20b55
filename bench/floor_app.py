"""The floor for `make bench`: the reference's fixed page plus one raw Redis round trip
per request, a SET of a per-visitor key with EX, over the server's own lean client
(banner_server.clients.fast, one connection per worker) and the server's Redis settings
(`BANNERS_REDIS_URL`, timeouts, key prefix, visitor TTL).  No server can do less and
still touch Redis once per request, so server/floor says what the banner logic keeps."""

import falcon

from banner_server.config import Settings
from banner_server.clients.fast import FastRedis, pack
from banner_server.layout.keys import Keys

from reference_app import PAGE

settings = Settings.from_env()
keys = Keys(settings.key_prefix)
redis = FastRedis(settings.redis_url, settings.redis_timeout, settings.redis_connect_timeout)
TTL = settings.visitor_ttl
VALUE = b"123"  # the fixed page's banner
COOKIE = "visitor_id="


class Floor:
    def on_get(self, req, resp, campaign_id=None):
        # The raw Cookie header stands for the visitor (bench/visitors.lua sends one
        # cookie): no parsing, but one key per visitor, of the server's key length.
        # "f:" keeps these keys apart from the server's own "c:" visitor keys.
        visitor = (req.env.get("HTTP_COOKIE") or "")[len(COOKIE):]
        redis.roundtrip(pack(b"SET", keys.visitor("f:" + visitor), VALUE, b"EX", TTL))
        resp.data = PAGE
        resp.content_type = falcon.MEDIA_JSON


class Health:
    def on_get(self, req, resp):
        redis.roundtrip(pack(b"PING"))  # up means Redis answers too
        resp.data = b"ok"


application = falcon.App()
application.add_route("/campaigns/{campaign_id}", Floor())
application.add_route("/healthz", Health())
