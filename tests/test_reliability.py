"""Failure modes with real redis-server processes: killed mid-load, memory full,
password, visitor key expiry; and the real HTTP server under slow and oversized clients."""

import json
import os
import socket

import pytest
import redis
from click.testing import CliRunner

from banner_server import cli
import loader.publish as publish_mod
from banner_server.layout.catalog import current_version, read_selections
from banner_server.clients.embedded import free_port
from tests.harness import RedisProcess
from tests.serving import KEYS, STANDARD, make_client, publish_rows
from tests.test_e2e import Server


@pytest.fixture(scope="module")
def small_data(sample_dir):
    return sample_dir(5, 0.01)


@pytest.fixture(scope="module")
def other_data(sample_dir):
    return sample_dir(6, 0.01)


def load(url, data, *extra):
    return CliRunner().invoke(cli.main, ["load", str(data), "--seed", "1", "-q", "--reject-log", os.devnull,
                                         "--redis-url", url, *extra])


def test_redis_killed_in_the_middle_of_a_load(small_data, other_data, monkeypatch):
    proc = RedisProcess().start()
    try:
        assert load(proc.url, small_data).exit_code == 0
        client = proc.client()
        client.save()  # what the embedded Redis does after every load
        before = read_selections(client, KEYS)
        serving, _ = make_client(proc.client(socket_timeout=0.05))
        assert serving.simulate_get("/campaigns/7").status_code == 200
        real = publish_mod._write_version

        def die_half_way(r, keys, ver, result, meta):
            r.sadd(keys.selection_set(ver, 1, 1), 1)
            proc.proc.kill()
            proc.proc.wait()
            real(r, keys, ver, result, meta)

        monkeypatch.setattr(publish_mod, "_write_version", die_half_way)
        res = load(proc.url, other_data)
        assert res.exit_code == 1 and "previous data keeps serving" in res.output, res.output
        assert "Traceback" not in res.output
        # the worker keeps answering from its snapshot while Redis is gone
        assert serving.simulate_get("/campaigns/7").status_code == 200
        proc.start()  # comes back with its last save: the old version, complete
        client = proc.client()
        assert read_selections(client, KEYS) == before
        monkeypatch.setattr(publish_mod, "_write_version", real)
        assert load(proc.url, other_data).exit_code == 0
        assert read_selections(client, KEYS) != before
        # the version serving before is kept, for a rollback
        assert client.smembers(KEYS.versions) == {before[0].encode(), current_version(client, KEYS).encode()}
    finally:
        proc.close()


def test_maxmemory_reached_fails_clearly_and_keeps_the_old_version(small_data, tmp_path):
    proc = RedisProcess("--maxmemory-policy", "noeviction").start()
    try:
        client = proc.client()
        ver = publish_rows(client, STANDARD)
        before = read_selections(client, KEYS)
        used = client.info("memory")["used_memory"]
        client.config_set("maxmemory", used + 64 * 1024)  # too little for a new version
        res = load(proc.url, small_data)
        assert res.exit_code == 1, res.output
        assert "OOM" in res.output and "previous data keeps serving" in res.output
        assert current_version(client, KEYS) == ver and read_selections(client, KEYS) == before
        assert client.smembers(KEYS.versions) == {ver.encode()}  # the partial version was removed
        client.config_set("maxmemory", 0)
        assert load(proc.url, small_data).exit_code == 0
    finally:
        proc.close()


def test_password_protected_redis_end_to_end(small_data, tmp_path):
    port = free_port()
    proc = RedisProcess("--port", str(port), "--bind", "127.0.0.1", "--requirepass", "s3cret").start()
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    try:
        res = load(f"redis://:wrong@127.0.0.1:{port}/0", small_data)
        assert res.exit_code == 1 and "s3cret" not in res.output and "wrong" not in res.output
        assert load(url, small_data).exit_code == 0
        shown = CliRunner().invoke(cli.main, ["show", "--json", "--redis-url", url])
        assert json.loads(shown.output)
        server = Server(url, tmp_path, "--quarter", "1")
        try:
            status, headers, body = server.get("/campaigns/7", {"Accept": "application/json"})
            assert status == 200 and json.loads(body)["quarter"] == 1
            assert server.get("/readyz")[0] == 200
        finally:
            server.stop()
    finally:
        proc.close()


def test_visitor_keys_expire(redis_proc, real_redis):
    publish_rows(real_redis, STANDARD)
    client, _ = make_client(real_redis, visitor_ttl=120)
    res = client.simulate_get("/campaigns/7", headers={"User-Agent": "ttl"})
    keys = [k.decode() for k in real_redis.scan_iter(match=KEYS.prefix + "*:vis:*")]
    assert len(keys) == 1 and ":vis:a:" in keys[0]  # the address+agent key only
    cookie = res.cookies["visitor_id"].value.split(".")[0]
    client.simulate_get("/campaigns/7", headers={"Cookie": f"visitor_id={cookie}"})
    keys = [k.decode() for k in real_redis.scan_iter(match=KEYS.prefix + "*:vis:*")]
    assert KEYS.visitor("c:" + cookie) in keys and len(keys) == 2
    assert all(0 < real_redis.ttl(k) <= 120 for k in keys)


# -- the real HTTP server under hostile clients ---------------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory):
    proc = RedisProcess().start()
    publish_rows(proc.client(), STANDARD)
    server = Server(proc.url, tmp_path_factory.mktemp("live"), "--quarter", "1")
    yield server
    server.stop()
    proc.close()


def test_slow_clients_do_not_starve_the_workers(live):
    slow = []
    for _ in range(300):  # slowloris: connections that never finish their headers
        s = socket.create_connection(("127.0.0.1", live.port))
        s.sendall(b"GET /campaigns/7 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(s)
    try:
        for _ in range(50):
            assert live.get("/campaigns/7")[0] == 200
        for s in slow[:50]:
            s.sendall(b"a")  # trickling bytes keeps them open and still harmless
        assert live.get("/healthz")[0] == 200
    finally:
        for s in slow:
            s.close()


def raw(live, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", live.port), timeout=5) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early; read what it answered
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
    return b"".join(chunks)


def status_of(reply: bytes) -> int | None:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.") else None


def test_oversized_requests_are_refused_not_crashing(live):
    huge_header = b"GET /campaigns/7 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\nConnection: close\r\n\r\n"
    assert status_of(raw(live, huge_header)) == 400  # meinheld's header limit
    body = b"x" * (1024 * 1024)
    post = (b"POST /campaigns/7 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
    assert status_of(raw(live, post)) == 413  # set_max_content_length(64 KiB)
    long_path = b"GET /campaigns/" + b"9" * 100_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert status_of(raw(live, long_path)) == 400
    assert status_of(raw(live, b"garbage\r\n\r\n")) == 400
    # and the server is fine afterwards
    assert live.get("/campaigns/7")[0] == 200


def test_embedded_redis_at_its_memory_cap_drops_visitors_never_selections(small_data, other_data, tmp_path):
    """A flood of new visitors (or forged cookies) fills the embedded Redis up to its
    cap; `volatile-lru` then evicts visitor keys (the only ones with a TTL) and the
    published data and the next load are untouched."""
    from banner_server.clients.embedded import EmbeddedRedis

    emb = EmbeddedRedis(tmp_path / "state", maxmemory="4mb")
    url = emb.ensure_running()
    try:
        assert load(url, small_data).exit_code == 0
        client = redis.Redis.from_url(url)
        before = read_selections(client, KEYS, current_version(client, KEYS))[1]
        pipe = client.pipeline(transaction=False)
        for i in range(60_000):  # ~7 MB of visitor keys, far over the cap
            pipe.set(KEYS.visitor(f"c:{i:022d}"), 101, ex=86400)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        info = client.info()
        assert info["evicted_keys"] > 0 and info["used_memory"] <= 4 * 1024 * 1024 * 1.1
        assert read_selections(client, KEYS, current_version(client, KEYS))[1] == before
        assert load(url, other_data).exit_code == 0  # room is made by dropping visitors
        assert read_selections(client, KEYS, current_version(client, KEYS))[1] != before
    finally:
        emb.stop()
