"""The real server (gunicorn + meinheld, or its gthread fallback) against hostile and
odd clients: nothing a client sends may break the answer to the next one."""

import json
import re
import socket
import threading

import pytest

from tests.harness import RedisProcess
from tests.serving import STANDARD, publish_rows
from tests.test_e2e import Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis_server():
    proc = RedisProcess().start()
    publish_rows(proc.client(), STANDARD + [(1, 20 + i, [2000 + 10 * i + j for j in range(5)]) for i in range(8)])
    yield proc
    proc.close()


@pytest.fixture(scope="module")
def one_worker(redis_server, tmp_path_factory):
    """One worker, so whatever a request leaves behind meets the very next one."""
    tmp = tmp_path_factory.mktemp("one")
    server = Server(redis_server.url, tmp, "--quarter", "1", "--workers", "1", "--access-log", str(tmp / "access.log"))
    server.access_log = tmp / "access.log"
    yield server
    server.stop()


def raw(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send `data`, then read until the server closes (or `timeout` of silence)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
    return b"".join(chunks)


BAD_REQUESTS = [
    b"CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\nleftover bytes",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"get / HTTP/1.1\r\n\r\n",
    b"BREW /pot HTTP/1.1\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
    b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    b" " * 100 + b"\r\n\r\n",
]


def test_no_request_breaks_the_next_one(one_worker):
    """meinheld 1.0.2 left a Python exception set after a CONNECT or an Upgrade: the
    next request on the worker answered 500 or killed it (SIGSEGV).  The project's
    build of meinheld (third_party/meinheld) refuses or ignores them cleanly."""
    pid = one_worker.workers()
    for bad in BAD_REQUESTS * 3:
        reply = raw(one_worker.port, bad)
        assert not reply.startswith(b"HTTP/1.1 5") and not reply.startswith(b"HTTP/1.0 5"), (bad, reply[:80])
        status, _, body = one_worker.get("/campaigns/7", {"Accept": "application/json"})
        assert status == 200, (bad, status, body[:200])
    assert one_worker.workers() == pid  # no worker crashed and was replaced
    metrics = one_worker.get("/metrics")[2].decode()
    assert re.search(r'banners_http_requests_total\{route="\(server\)",status="400"\} [1-9]', metrics), metrics
    assert 'status="500"' not in metrics


def test_answers_do_not_advertise_versions(one_worker):
    _, headers, _ = one_worker.get("/healthz")
    assert headers["Server"] == "banners"
    assert b"Server: banners\r\n" in raw(one_worker.port, b"garbage\r\n\r\n")


def test_access_log_cannot_be_forged_and_has_no_junk_lines(one_worker):
    before = one_worker.access_log.read_text().count("\n") if one_worker.access_log.exists() else 0
    for _ in range(5):  # connections closed without a request
        socket.create_connection(("127.0.0.1", one_worker.port)).close()
    one_worker.get("/campaigns/7%0aforged%20line?x=%1b[31m", {"User-Agent": "evil\x1b[2J\x07 ua"})
    one_worker.get("/healthz", {"User-Agent": 'quote " and \\ backslash'})
    deadline = 50
    while deadline and one_worker.access_log.read_text().count("\n") < before + 2:
        threading.Event().wait(0.1)
        deadline -= 1
    lines = one_worker.access_log.read_text().splitlines()[before:]
    assert len(lines) == 2, lines  # the two requests, nothing for the bare connections
    assert "forged" in lines[0] and "\\x0a" in lines[0] and "\\x1b" in lines[0] and "\x1b" not in lines[0]
    assert '"- - -"' not in "\n".join(lines)
    assert '\\x22' in lines[1] and '\\x5c' in lines[1]


def test_the_gthread_fallback_serves_concurrent_requests_right(redis_server, tmp_path):
    """Without meinheld, gunicorn's threads serve requests at once: each must get its
    own Redis connection (one shared socket mixed up the replies) and exact counts."""
    shadow = tmp_path / "shadow"
    (shadow / "meinheld").mkdir(parents=True)
    (shadow / "meinheld" / "__init__.py").write_text("raise ImportError('meinheld hidden by the test')\n")
    server = Server(redis_server.url, tmp_path / "state", "--quarter", "1", "--workers", "1",
                    env={"PYTHONPATH": str(shadow)})
    try:
        expected = {20 + i: {2000 + 10 * i + j for j in range(5)} for i in range(8)}
        errors, done = [], []

        def client(n):
            conn = server.connection()
            for k in range(150):
                campaign = 20 + (n + k) % 8
                status, _, body = server.get(f"/campaigns/{campaign}", {"Accept": "application/json"}, conn)
                answer = json.loads(body) if status == 200 else {}
                if status != 200 or answer["campaign_id"] != campaign or answer["banner_id"] not in expected[campaign]:
                    errors.append((campaign, status, body[:100]))
                done.append(1)
            conn.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(done) == 2400 and errors == []
        metrics = server.get("/metrics")[2].decode()
        served = sum(int(float(m)) for m in re.findall(r'banners_served_total\{campaign="2\d"\} (\S+)', metrics))
        assert served == 2400
    finally:
        server.stop()
    assert "gthread" in server.proc.stdout.read().decode()


def test_json_logs_are_one_object_a_line(redis_server, tmp_path):
    server = Server(redis_server.url, tmp_path / "state", "--quarter", "1", "--workers", "1",
                    "--log-format", "json", "--access-log", "-")
    try:
        assert server.get("/campaigns/7", {"User-Agent": 'esc \x1b "quoted"'})[0] == 200
        assert server.get("/campaigns/7")[0] == 200
    finally:
        server.stop()
    lines = [line for line in server.proc.stdout.read().decode().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert any(r["logger"] == "gunicorn.error" and "Listening at" in r["message"] for r in records)
    access = [r for r in records if r["logger"] == "gunicorn.access"]
    assert access and access[-1]["path"] == "/campaigns/7" and access[-1]["status"] == 200
    assert all({"time", "level", "pid", "message"} <= set(r) for r in records)
