"""rediss:// end to end: a TLS front (Python's ssl, a test CA from trustme) before a
real redis-server, since the bundled binary is built without TLS."""

import json
import os
import select
import socket
import ssl
import threading
import time

import pytest
import trustme
from click.testing import CliRunner

from banner_server import cli
from loader.sample_data import write_sample
from tests.harness import RedisProcess
from tests.test_e2e import Server
from tests.serving import KEYS


class TLSFront:
    """Accepts TLS on 127.0.0.1:<port> and relays bytes to a unix socket."""

    def __init__(self, target: str, ca: trustme.CA, handshake_delay: float = 0.0):
        self.target = target
        self.handshake_delay = handshake_delay
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self.ctx)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, raw):
        try:
            time.sleep(self.handshake_delay)  # a far or busy Redis: the handshake takes a while
            tls = self.ctx.wrap_socket(raw, server_side=True)
            back = socket.socket(socket.AF_UNIX)
            back.connect(self.target)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        pairs = {tls: back, back: tls}
        try:
            while not self.stop.is_set():
                ready, _, _ = select.select([tls, back], [], [], 0.2)
                if tls.pending():
                    ready = list(set(ready) | {tls})
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pairs[s].sendall(data)
        except (OSError, ssl.SSLError):
            return
        finally:
            tls.close()
            back.close()

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture
def tls_redis(tmp_path):
    """(rediss:// URL trusting the test CA, the redis-server behind it, the front)."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    proc = RedisProcess().start()
    front = TLSFront(str(proc.socket), ca)
    yield f"rediss://127.0.0.1:{front.port}/0?ssl_ca_certs={ca_file}", proc, front
    front.close()
    proc.close()


def test_rediss_load_show_and_serve(tls_redis, tmp_path):
    url, proc, _ = tls_redis
    data = tmp_path / "data"
    write_sample(data, seed=2, scale=0.01)
    res = CliRunner().invoke(cli.main, ["load", str(data), "-q", "--redis-url", url, "--reject-log", os.devnull])
    assert res.exit_code == 0, res.output
    assert proc.client().get(KEYS.current) is not None  # it really went through
    shown = CliRunner().invoke(cli.main, ["show", "--json", "--quarter", "1", "--redis-url", url])
    assert {r["quarter"] for r in json.loads(shown.output)} == {1}
    # The TLS front is a Python thread in this busy test process, not a real Redis:
    # give it budgets it can keep so the test checks rediss, not this machine's load.
    server = Server(url, tmp_path / "state", "--quarter", "1",
                    env={"BANNERS_REDIS_TIMEOUT": "1", "BANNERS_REDIS_CONNECT_TIMEOUT": "5"})
    try:
        assert server.get("/readyz")[0] == 200
        for _ in range(20):
            status, _, body = server.get("/campaigns/7", {"Accept": "application/json"})
            assert status == 200 and json.loads(body)["quarter"] == 1
        metrics = server.get("/metrics")[2].decode()
        assert "banners_degraded_answers_total{" not in metrics  # answered through Redis, not a snapshot
    finally:
        server.stop()


def test_rediss_with_an_unknown_ca_is_refused_clearly(tls_redis, tmp_path):
    url, _, _ = tls_redis
    bad = url.split("?")[0]  # the system CAs do not know the test CA
    data = tmp_path / "data"
    write_sample(data, seed=2, scale=0.01)
    res = CliRunner().invoke(cli.main, ["load", str(data), "-q", "--redis-url", bad, "--reject-log", os.devnull])
    assert res.exit_code == 1 and "cannot reach Redis" in res.output and "Traceback" not in res.output


def test_a_slow_handshake_gets_the_connect_budget_not_the_command_budget(tls_redis):
    """A TLS handshake is several round trips: it must not be held to the 50 ms a
    command gets, or a far Redis could never be reached at all."""
    from banner_server.clients.fast import FastRedis, FastRedisError, pack

    url, _, front = tls_redis
    front.handshake_delay = 0.3
    with pytest.raises(FastRedisError):
        FastRedis(url, timeout=0.05).roundtrip(pack(b"PING"))
    fast = FastRedis(url, timeout=0.05, connect_timeout=10)
    sock = fast._connect()  # within the connect budget, despite the slow handshake
    assert sock.gettimeout() == 0.05  # commands keep the short budget
    sock.settimeout(5)  # (the Python TLS front may take longer than 50 ms on a busy box)
    assert fast.roundtrip(pack(b"PING")) == b"PONG"
