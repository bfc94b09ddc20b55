"""A minimal Redis connection for the one command on the request path.

redis-py costs about as much CPU per call as the whole rest of a request (command
packing, the connection pool, retries, response callbacks); this sends one
pre-packed EVALSHA and parses the reply with hiredis' C reader.  Everything that is
not the hot path still uses redis-py.  Supports redis://, rediss:// (TLS) and
unix:// URLs, with username/password and a database number.
"""

from __future__ import annotations

import hashlib
import socket
import ssl

import hiredis

from .config import parse_redis_url


class FastRedisError(Exception):
    """Redis could not answer (connection, timeout, protocol); the caller degrades."""


def _pack(*parts) -> bytes:
    """One command in RESP; str and int parts are sent as their decimal/UTF-8 text."""
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        if not isinstance(p, bytes):
            p = str(p).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


class FastRedis:
    def __init__(self, url: str, timeout: float = 0.05, connect_timeout: float | None = None):
        # redis-py's own URL parser, so both clients read a URL the same way (and one
        # that either cannot use fails here, as in the CLI, not in every worker).
        params = parse_redis_url(url)
        self.scheme = url.strip().split("://", 1)[0]
        self.timeout = timeout
        # Connecting (TCP, a TLS handshake, AUTH) takes several round trips and happens
        # once per worker, so it may get its own, longer budget than one command.
        self.connect_timeout = connect_timeout or timeout
        self.path = params.get("path")
        self.host = params.get("host", "localhost")  # redis-py's defaults
        self.port = params.get("port", 6379)
        self.username = params.get("username")
        self.password = params.get("password")
        self.db = params.get("db", 0)
        # The same query parameters redis-py reads from a rediss:// URL.
        self.ssl_verify = (params.get("ssl_cert_reqs") or "required") != "none"
        self.ssl_ca_certs = params.get("ssl_ca_certs")
        self.sock: socket.socket | None = None
        self.reader = hiredis.Reader()

    # -- connection ---------------------------------------------------------------
    def _connect(self) -> socket.socket:
        try:
            if self.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.connect_timeout)
                sock.connect(self.path)
            else:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.scheme == "rediss":
                    ctx = ssl.create_default_context(cafile=self.ssl_ca_certs)
                    if not self.ssl_verify:
                        ctx.check_hostname = False
                        ctx.verify_mode = ssl.CERT_NONE
                    sock = ctx.wrap_socket(sock, server_hostname=self.host)
        except OSError as exc:
            raise FastRedisError(f"cannot connect: {exc}") from None
        self.sock = sock
        self.reader = hiredis.Reader()
        try:
            if self.password:
                user = [self.username] if self.username else []
                self._roundtrip(_pack(b"AUTH", *user, self.password))
            if self.db:
                self._roundtrip(_pack(b"SELECT", self.db))
        except hiredis.ReplyError as exc:
            self.close()  # never keep a connection that is not authenticated
            raise FastRedisError(str(exc)) from None
        sock.settimeout(self.timeout)
        return sock

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _roundtrip(self, packed: bytes):
        sock = self.sock or self._connect()
        reader = self.reader
        try:
            sock.sendall(packed)
            while True:
                reply = reader.gets()
                if reply is not False:
                    break
                data = sock.recv(65536)
                if not data:
                    raise FastRedisError("connection closed by Redis")
                reader.feed(data)
        except (OSError, hiredis.ProtocolError) as exc:
            # A timed-out reply may still arrive later: never reuse this connection.
            self.close()
            raise FastRedisError(f"{type(exc).__name__}: {exc}") from None
        except FastRedisError:
            self.close()
            raise
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply

    # -- the one command ----------------------------------------------------------
    def script(self, source: str) -> "FastScript":
        return FastScript(self, source)


class FastScript:
    def __init__(self, conn: FastRedis, source: str):
        self.conn = conn
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()

    def __call__(self, keys: list, args: list):
        try:
            return self.conn._roundtrip(_pack(b"EVALSHA", self.sha, len(keys), *keys, *args))
        except hiredis.ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise FastRedisError(str(exc)) from None
        # First call on this server (or it restarted): EVAL loads the script too.
        try:
            return self.conn._roundtrip(_pack(b"EVAL", self.source, len(keys), *keys, *args))
        except hiredis.ReplyError as exc:
            raise FastRedisError(str(exc)) from None
