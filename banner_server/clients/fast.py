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
import struct
import threading

import hiredis

from .errors import FastRedisError, FastReplyError
from .urls import parse_redis_url


def kernel_timeouts(sock: socket.socket, seconds: float | None) -> None:
    """The command budget as the kernel's SO_RCVTIMEO / SO_SNDTIMEO on a socket left
    blocking: a round trip is one send() and one recv().  With Python's settimeout
    every send and recv polls first (two poll() a round trip: strace, issue 23).  A
    recv or send that waits longer fails with EAGAIN (BlockingIOError), which
    _timed_out() reports as the timeout it is.  Not for TLS sockets (see _connect)."""
    if not seconds or seconds <= 0:
        sock.settimeout(seconds)  # none, or non-blocking: nothing for the kernel to time
        return
    whole = int(seconds)
    # At least 1 us: a zeroed timeval means "wait forever" to the kernel.
    timeval = struct.pack("ll", whole, max(int(round((seconds - whole) * 1e6)), 1 if not whole else 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    sock.settimeout(None)


def _timed_out(exc: Exception) -> Exception:
    """EAGAIN on a blocking socket is a kernel timeout expiring: the same TimeoutError
    Python's own socket timeout raises, so callers (and messages) cannot tell them apart."""
    return TimeoutError("timed out") if isinstance(exc, BlockingIOError) else exc


# A connection Redis closed while it sat idle (CLIENT KILL, the `timeout` setting, a
# proxy, a failover) fails like this on its next use; it is worth one reconnect.
_DEAD = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def _bulk(parts) -> list[bytes]:
    """RESP bulk strings of `parts`: str and int as their UTF-8/decimal text.  (Exact
    class checks and `b"%d"`: a third faster than isinstance and str().)"""
    out = []
    append = out.append
    for p in parts:
        kind = p.__class__
        if kind is str:
            p = p.encode()
        elif kind is not bytes:
            p = b"%d" % p
        append(b"$%d\r\n%s\r\n" % (len(p), p))
    return out


# RESP bulk strings of the parts a script call repeats (the version, the TTL, the
# hour, the group's keys, a campaign's keys): one dict lookup each instead of an
# encode and a format.  Packing a pick's 11 parts: 3.4 us with _bulk, 0.5 us with
# every part found here (timeit, issue 23).  Emptied when full, so parts seen once
# (a visitor's key) cannot grow it: at most _CACHED entries.
_CACHED = 4096
_bulk_cache: dict = {}


def _bulk_cached(parts) -> list[bytes]:
    """_bulk(parts), from and into _bulk_cache.  A part equal to one cached (1 and
    True, "x" and a str subclass "x") has the same RESP text, so equal keys may share."""
    cache = _bulk_cache
    get = cache.get
    out = []
    append = out.append
    for p in parts:
        b = get(p)
        if b is None:
            kind = p.__class__
            e = p.encode() if kind is str else p if kind is bytes else b"%d" % p
            b = b"$%d\r\n%s\r\n" % (len(e), e)
            if len(cache) >= _CACHED:
                cache.clear()
            cache[p] = b
        append(b)
    return out


def pack(*parts) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(parts) + b"".join(_bulk(parts))


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
        # One connection per thread: gthread workers (the fallback when meinheld is
        # missing) run requests on several threads at once, and two requests on one
        # socket would read each other's replies.  meinheld runs one thread.
        self._local = threading.local()

    # -- connection ---------------------------------------------------------------
    @property
    def sock(self) -> socket.socket | None:
        return getattr(self._local, "sock", None)

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
        local = self._local
        local.sock = sock
        local.reader = hiredis.Reader()
        try:
            if self.password:
                user = [self.username] if self.username else []
                self._send(pack(b"AUTH", *user, self.password), sock, local.reader)
            if self.db:
                self._send(pack(b"SELECT", self.db), sock, local.reader)
        except FastReplyError:
            self.close()  # never keep a connection that is not authenticated
            raise
        if isinstance(sock, ssl.SSLSocket):
            # Python's TLS layer retries a read that failed with EAGAIN on a socket it
            # thinks blocking: under SO_RCVTIMEO a silent peer hangs the worker
            # (measured: a recv() with a 50 ms SO_RCVTIMEO returned after 5 s, when
            # the peer closed).  TLS keeps Python's timeout and its poll().
            sock.settimeout(self.timeout)
        else:
            kernel_timeouts(sock, self.timeout)
        return sock

    def close(self) -> None:
        sock = getattr(self._local, "sock", None)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
            self._local.sock = None

    def _send(self, packed: bytes, sock: socket.socket, reader):
        try:
            sock.sendall(packed)
            while True:
                reply = reader.gets()
                if reply is not False:
                    break
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError("connection closed by Redis")
                reader.feed(data)
        except (OSError, hiredis.ProtocolError) as exc:
            # A timed-out reply may still arrive later: never reuse this connection.
            self.close()
            exc = _timed_out(exc)
            raise FastRedisError(f"{type(exc).__name__}: {exc}") from exc
        if isinstance(reply, hiredis.ReplyError):
            raise FastReplyError(str(reply))
        return reply

    def roundtrip(self, packed: bytes):
        local = self._local
        sock = getattr(local, "sock", None)
        if sock is None:
            return self._send(packed, self._connect(), local.reader)
        try:
            return self._send(packed, sock, local.reader)
        except FastRedisError as exc:
            # A reused connection that Redis had closed: reconnect and send once more
            # right away instead of degrading.  Not after a timeout: a frozen Redis
            # would cost the budget twice.
            if not isinstance(exc.__cause__, _DEAD):
                raise
        return self._send(packed, self._connect(), local.reader)

    def exchange(self, packed: bytes, n: int) -> list:
        """Sends n pipelined commands in one write and returns their n replies; error
        replies are returned as hiredis.ReplyError values, for the caller to judge (a
        cluster's ASKING + command).  Connection problems raise FastRedisError, and a
        reused connection Redis had closed is reopened once, as in roundtrip."""
        local = self._local
        sock = getattr(local, "sock", None)
        if sock is not None:
            try:
                return self._send_many(packed, n, sock, local.reader)
            except FastRedisError as exc:
                if not isinstance(exc.__cause__, _DEAD):
                    raise
        return self._send_many(packed, n, self._connect(), local.reader)

    def _send_many(self, packed: bytes, n: int, sock: socket.socket, reader) -> list:
        replies = []
        try:
            sock.sendall(packed)
            while len(replies) < n:
                reply = reader.gets()
                if reply is False:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionResetError("connection closed by Redis")
                    reader.feed(data)
                else:
                    replies.append(reply)
        except (OSError, hiredis.ProtocolError) as exc:
            self.close()
            exc = _timed_out(exc)
            raise FastRedisError(f"{type(exc).__name__}: {exc}") from exc
        return replies

    # -- the one command ----------------------------------------------------------
    def script(self, source: str) -> "FastScript":
        return FastScript(self, source)


class FastScript:
    def __init__(self, conn: FastRedis, source: str):
        self.conn = conn
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()
        self._heads: dict[tuple[int, int], bytes] = {}

    def __call__(self, keys: list, args: list):
        n = len(keys)
        head = self._heads.get((n, len(args)))
        if head is None:
            # "*<parts>" + EVALSHA + sha + numkeys never change for a call shape: packed once.
            head = self._heads[n, len(args)] = b"*%d\r\n%s" % (
                3 + n + len(args), b"".join(_bulk((b"EVALSHA", self.sha, n))))
        try:
            return self.conn.roundtrip(b"".join([head, *_bulk_cached(keys), *_bulk_cached(args)]))
        except FastReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        # First call on this server (or it restarted): EVAL loads the script too.
        return self.conn.roundtrip(pack(b"EVAL", self.source, len(keys), *keys, *args))
