"""The raw floor for `make bench`: the reference's fixed page plus one `SET key value EX
ttl` per request, written and read on a plain blocking socket: no timeout (so no
poll() before the send and the recv), no client library, no reply parser beyond
"+OK\\r\\n".  Same gunicorn + meinheld stack and the same Redis (its URL from
BANNERS_REDIS_URL, so the same transport as the server: unix socket or TCP) as the
other apps.  What no request that touches Redis can beat: server/raw-floor says what
the banner logic, its client and its timeout keep of it.

Only for the bench: no timeout means a frozen Redis hangs the worker."""

import socket

import falcon

from banner_server.clients.urls import parse_redis_url
from banner_server.config import Settings
from banner_server.layout.keys import Keys

from reference_app import PAGE

settings = Settings.from_env()
keys = Keys(settings.key_prefix)
TTL = b"%d" % settings.visitor_ttl
COOKIE = "visitor_id="
OK = b"+OK\r\n"


def connect() -> socket.socket:
    params = parse_redis_url(settings.redis_url)
    if settings.redis_url.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(params["path"])
    else:
        if settings.redis_url.startswith("rediss://"):
            raise SystemExit("raw_floor_app: plain sockets only (redis:// or unix://)")
        sock = socket.create_connection((params.get("host", "localhost"), params.get("port", 6379)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)  # blocking, no timeout: send and recv are one system call each
    password = params.get("password")
    if password:  # once per worker, not per request
        user = [params["username"].encode()] if params.get("username") else []
        sock.sendall(command(b"AUTH", *user, password.encode()))
        if sock.recv(64) != OK:
            raise SystemExit("raw_floor_app: AUTH refused")
    return sock


def command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


sock = None  # connected on the first request: gunicorn forks after loading the app


def roundtrip(packed: bytes) -> bytes:
    global sock
    if sock is None:
        sock = connect()
    sock.sendall(packed)
    reply = sock.recv(64)
    while not reply.endswith(b"\r\n"):
        more = sock.recv(64)
        if not more:
            raise ConnectionResetError("Redis closed the connection")
        reply += more
    return reply


class RawFloor:
    def on_get(self, req, resp, campaign_id=None):
        # As floor_app: the raw Cookie header stands for the visitor, one key per
        # visitor of the server's key length ("r:" apart from the others' keys).
        visitor = (req.env.get("HTTP_COOKIE") or "")[len(COOKIE):]
        key = keys.visitor("r:" + visitor).encode()
        if roundtrip(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\n123\r\n$2\r\nEX\r\n$%d\r\n%s\r\n"
                     % (len(key), key, len(TTL), TTL)) != OK:
            raise falcon.HTTPInternalServerError()
        resp.data = PAGE
        resp.content_type = falcon.MEDIA_JSON


class Health:
    def on_get(self, req, resp):
        roundtrip(command(b"PING"))  # up means Redis answers too
        resp.data = b"ok"


application = falcon.App()
application.add_route("/campaigns/{campaign_id}", RawFloor())
application.add_route("/healthz", Health())
