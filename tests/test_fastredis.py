"""The hot path's lean Redis client against real redis-server processes."""

import pytest

from banner_server.embedded_redis import free_port
from banner_server.fastredis import FastRedis, FastRedisError
from banner_server.web.store import PICK_LUA
from tests.conftest import RedisProcess


def test_script_loads_itself_and_survives_script_flush(redis_proc, real_redis):
    conn = FastRedis(redis_proc.url, timeout=1)
    script = conn.script("return {KEYS[1], ARGV[1]}")
    assert script(["k"], [7]) == [b"k", b"7"]
    real_redis.script_flush()
    assert script(["k2"], [b"x"]) == [b"k2", b"x"]
    conn.close()


def test_pick_script_on_the_real_binary(redis_proc, real_redis):
    cur, sel, vis = "banners:{t}:current", "banners:{t}:v:3:q:1:c:7", "banners:{t}:vis:v"
    real_redis.set(cur, "3")
    real_redis.sadd(sel, 1, 2)
    pick = FastRedis(redis_proc.url, timeout=1).script(PICK_LUA)
    seen = [pick([cur, sel, vis], ["3", 60])[1] for _ in range(20)]
    assert all(a != b for a, b in zip(seen, seen[1:]))
    assert real_redis.ttl(vis) == 60 and real_redis.get(vis) == seen[-1]
    # a new cookie carries the last banner of the cookie-less request: it counts once
    assert all(pick([cur, sel, f"banners:{{t}}:vis:new{i}"], ["3", 60, 1])[1] == b"2" for i in range(10))
    assert pick([cur, "banners:{t}:v:3:q:1:c:8", vis], ["3", 60]) == [b"3", b""]  # no such campaign
    assert pick([cur, sel, vis], ["2", 60]) == [b"3"]  # another version is current: its id
    assert pick(["banners:{t}:nothing", sel, vis], ["3", 60]) == []  # nothing published


def test_lua_error_is_reported_not_swallowed(redis_proc, real_redis):
    bad = FastRedis(redis_proc.url, timeout=1).script("return redis.call('NOPE')")
    with pytest.raises(FastRedisError, match="Unknown Redis command|unknown command"):
        bad([], [])


def test_unreachable_and_frozen_redis_raise_quickly():
    with pytest.raises(FastRedisError):
        FastRedis("unix:///nonexistent/redis.sock", timeout=0.05).script("return 1")([], [])
    proc = RedisProcess().start()
    try:
        conn = FastRedis(proc.url, timeout=0.05)
        script = conn.script("return 1")
        assert script([], []) == 1
        proc.freeze()
        with pytest.raises(FastRedisError, match="timed out"):
            script([], [])
        proc.thaw()
        assert script([], []) == 1  # reconnects on the next call
    finally:
        proc.close()


def test_password_and_database_over_tcp():
    port = free_port()
    proc = RedisProcess("--port", str(port), "--bind", "127.0.0.1", "--requirepass", "s3cret").start()
    try:
        conn = FastRedis(f"redis://:s3cret@127.0.0.1:{port}/2", timeout=1)
        assert conn.script("redis.call('SET', KEYS[1], 'v') return 1")(["k"], []) == 1
        client = proc.client(db=2)
        assert client.get("k") == b"v"
        with pytest.raises(FastRedisError, match="WRONGPASS|invalid password"):
            FastRedis(f"redis://:wrong@127.0.0.1:{port}/0", timeout=1).script("return 1")([], [])
    finally:
        proc.close()
