"""The hot path's Redis socket is timed by the kernel (SO_RCVTIMEO / SO_SNDTIMEO on a
blocking socket), not by Python's settimeout, which polls before every send and recv;
the budget and the answer on expiry stay the same.  TLS keeps Python's timeout."""

import socket
import struct

import pytest
import trustme

from banner_server.clients.embedded import free_port
from banner_server.clients.fast import FastRedis, FastRedisError, kernel_timeouts, pack
from tests.harness import RedisProcess
from tests.test_tls import TLSFront


def _timeval(sock: socket.socket, option: int) -> float:
    """The kernel's timeout in seconds; it keeps it in clock ticks (4 ms at HZ=250),
    rounded up."""
    sec, usec = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("ll")))
    return sec + usec / 1e6


TICK = 0.011  # the coarsest kernel clock tick (HZ=100: 10 ms) and then some


@pytest.fixture
def proc():
    p = RedisProcess().start()
    yield p
    p.close()


def test_plain_sockets_are_blocking_with_kernel_timeouts(proc):
    """CPython polls only a socket with a timeout: None means a round trip is a send
    and a recv; the kernel holds the 50 ms."""
    fast = FastRedis(proc.url, timeout=0.05)
    assert fast.roundtrip(pack(b"PING")) == b"PONG"
    sock = fast.sock
    assert sock.gettimeout() is None
    assert 0.05 <= _timeval(sock, socket.SO_RCVTIMEO) < 0.05 + TICK
    assert 0.05 <= _timeval(sock, socket.SO_SNDTIMEO) < 0.05 + TICK


def test_a_timeval_is_never_zero_and_none_means_no_timeout():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        kernel_timeouts(sock, 1e-9)  # rounds to 0 us, which the kernel would read as "forever"
        assert 0 < _timeval(sock, socket.SO_RCVTIMEO) < TICK
        kernel_timeouts(sock, 2.25)
        assert 2.25 <= _timeval(sock, socket.SO_RCVTIMEO) < 2.25 + TICK
        assert sock.gettimeout() is None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        kernel_timeouts(sock, None)
        assert sock.gettimeout() is None and _timeval(sock, socket.SO_RCVTIMEO) == 0


def test_a_frozen_redis_over_tcp_times_out_as_before():
    """EAGAIN from the kernel's timeout is the same 'timed out' error (not a dead
    connection, so it is not retried at once), and the next call reconnects."""
    port = free_port()
    proc = RedisProcess("--port", str(port), "--bind", "127.0.0.1").start()
    try:
        fast = FastRedis(f"redis://127.0.0.1:{port}/0", timeout=0.05)
        assert fast.roundtrip(pack(b"PING")) == b"PONG"
        assert fast.sock.gettimeout() is None
        proc.freeze()
        try:
            with pytest.raises(FastRedisError, match="TimeoutError: timed out") as info:
                fast.roundtrip(pack(b"PING"))
            assert isinstance(info.value.__cause__, TimeoutError)
            with pytest.raises(FastRedisError, match="timed out"):
                fast.exchange(pack(b"PING") * 2, 2)
        finally:
            proc.thaw()
        assert fast.roundtrip(pack(b"PING")) == b"PONG"
    finally:
        proc.close()


def test_a_silent_tls_peer_surfaces_as_a_timeout_not_a_hang(tmp_path, proc):
    """Python's TLS layer loops on EAGAIN from a socket it thinks blocking, so a TLS
    socket under SO_RCVTIMEO alone would wait until the peer closes: TLS keeps
    Python's timeout, and a frozen Redis behind it is a timeout."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    front = TLSFront(str(proc.socket), ca)
    try:
        fast = FastRedis(f"rediss://127.0.0.1:{front.port}/0?ssl_ca_certs={ca_file}", timeout=0.2,
                         connect_timeout=10)
        fast._connect()
        fast.sock.settimeout(5)  # the first reply through the Python front may be slow on a busy box
        assert fast.roundtrip(pack(b"PING")) == b"PONG"
        fast.sock.settimeout(0.2)
        proc.freeze()
        try:
            with pytest.raises(FastRedisError, match="timed out"):
                fast.roundtrip(pack(b"PING"))
        finally:
            proc.thaw()
    finally:
        front.close()
