"""One Redis, a Redis Cluster, a Sentinel set: detection, redis-py's clients, and the
hot path's clients through slot moves, migrations and failovers, on real servers (the
redis_cluster and redis_sentinel fixtures of conftest.py, tests/harness.py)."""

import time

import pytest
import redis
from redis.cluster import RedisCluster

from banner_server.clients.embedded import free_port
from banner_server.clients.cluster import ClusterFast
from banner_server.clients.detect import LazyClient, LazyFast, connect_client, connect_fast
from banner_server.clients.errors import FastRedisError, FastReplyError
from banner_server.clients.fast import FastRedis
from banner_server.clients.sentinel import SentinelFast
from banner_server.clients.urls import check_url, parse_sentinel_url

# Writes ARGV[1] to every key and returns the first key's value: what a call changed
# can be looked up on the server that must hold it.
SET_GET = """
for i, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1]) end
return redis.call('GET', KEYS[1])
"""
GET = "return redis.call('GET', KEYS[1])"


# -- URLs -------------------------------------------------------------------------------

def test_sentinel_urls_are_parsed():
    t = parse_sentinel_url("redis+sentinel://u:p%40ss@10.0.0.1:26380,h2,[::1]:5000/mymaster/3"
                           "?sentinel_password=s%20p")
    assert t.sentinels == (("10.0.0.1", 26380), ("h2", 26379), ("::1", 5000))
    assert (t.master, t.db, t.username, t.password, t.sentinel_password, t.tls) == \
        ("mymaster", 3, "u", "p@ss", "s p", False)
    assert t.master_url("10.0.0.9", 6380) == "redis://u:p%40ss@10.0.0.9:6380/3"
    assert t.sentinel_url("h2", 26379) == "redis://:s%20p@h2:26379/0"
    t = parse_sentinel_url("rediss+sentinel://:pw@h:1/m?db=2&ssl_cert_reqs=none")
    assert (t.tls, t.db, t.password, t.username) == (True, 2, "pw", None)
    assert t.master_url("h", 7) == "rediss://:pw@h:7/2?ssl_cert_reqs=none"


def test_cluster_nodes_get_the_urls_credentials_and_tls_settings():
    from redis.connection import parse_url

    from banner_server.clients.urls import node_url

    assert node_url("rediss://u:p%40ss@seed:7000/0?ssl_cert_reqs=none&db=0", "10.0.0.2", 7001) == \
        "rediss://u:p%40ss@10.0.0.2:7001?ssl_cert_reqs=none"
    assert node_url("unix://:pw@/run/redis.sock", "::1", 7002) == "redis://:pw@[::1]:7002"
    assert parse_url(node_url("redis://:p%40ss@seed:1", "h", 2))["password"] == "p@ss"


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:6379", "redis://"),
    ("redis://127.0.0.1:99999", "[Pp]ort"),
    ("redis://127.0.0.1:6379/zero", "not a number"),  # urls.parse_redis_url's own check
    ("redis+sentinel://127.0.0.1:26379", "MASTER_NAME"),
    ("redis+sentinel:///m", "host:port"),
    ("redis+sentinel://h:1,,h:2/m", "host:port"),
    ("redis+sentinel://h:port/m", "not a number"),
    ("redis+sentinel://h:0/m", "host:port"),
    ("redis+sentinel://h:1/m/x", "database"),
    ("redis+sentinel://h:1/m/1/2", "path"),
    ("redis+sentinel://h:1/m?sentinel_pasword=x", "unknown Sentinel URL parameter"),
])
def test_bad_urls_raise_value_error_saying_why(url, message):
    for call in (check_url, lambda u: connect_client(u, 0.1), lambda u: connect_fast(u, 0.1)):
        with pytest.raises(ValueError, match=message):
            call(url)


# -- one Redis ------------------------------------------------------------------------------

def test_one_redis_gets_the_plain_clients(redis_proc, real_redis):
    client = connect_client(redis_proc.url, 1)
    assert type(client) is redis.Redis and client.set("a", 1) and real_redis.get("a") == b"1"
    fast = connect_fast(redis_proc.url, 1)
    # The very class the hot path used before topologies: nothing added per call.
    assert type(fast) is FastRedis
    assert fast.script(SET_GET)(["b"], ["x"]) == b"x"
    client.close()
    fast.close()


def test_nothing_answering_yet_gives_lazy_clients_that_recover():
    """A server started before its Redis: its clients fail like a client of a Redis that
    is down, then work once it answers, with no restart."""
    from tests.harness import RedisProcess

    port = free_port()
    url = f"redis://127.0.0.1:{port}"
    client, fast = connect_client(url, 0.2), connect_fast(url, 0.2)
    assert isinstance(client, LazyClient) and isinstance(fast, LazyFast)
    script = fast.script(SET_GET)
    with pytest.raises(redis.ConnectionError):
        client.get("a")
    with pytest.raises(FastRedisError) as exc:
        script(["a"], ["1"])
    assert not isinstance(exc.value, FastReplyError)  # unreachable, not an error reply
    proc = RedisProcess("--port", str(port), "--bind", "127.0.0.1").start()
    try:
        assert script(["a"], ["1"]) == b"1" and client.get("a") == b"1"
        assert type(fast.resolve()) is FastRedis and type(client.resolve()) is redis.Redis
    finally:
        proc.close()


# -- Redis Cluster ---------------------------------------------------------------------------

def test_cluster_is_detected_from_any_node(redis_cluster):
    for node in (redis_cluster.masters()[1], redis_cluster.replicas()[0]):
        client = connect_client(node.url, 1)
        assert isinstance(client, RedisCluster)
        keys = [f"key{i}" for i in range(30)]  # over all three masters
        for k in keys:
            client.set(k, k)
        assert client.mget(*keys[:1]) == [b"key0"] and all(client.get(k) == k.encode() for k in keys)
        client.close()
        fast = connect_fast(node.url, 1)
        assert isinstance(fast, ClusterFast)
        assert fast.script(GET)(["key7"], []) == b"key7"
        fast.close()


def test_cluster_calls_land_on_the_master_that_owns_the_slot(redis_cluster):
    fast = connect_fast(redis_cluster.url, 1, check_slots=True)
    script = fast.script(SET_GET)
    owners = set()
    for i in range(60):
        key = f"visitor:{i}"
        assert script([key], [str(i)]) == str(i).encode()
        owner = redis_cluster.owner(key)
        assert fast.owner(key) == owner.addr
        # A plain GET on a node that does not own the slot answers MOVED: the value is
        # where the cluster says the key lives.
        assert owner.cmd("GET", key) == str(i).encode()
        owners.add(owner)
    assert len(owners) == 3
    # Keys that share a {hash tag} share a slot: one call writes them all, on one master.
    assert script(["{v:42}:last", "{v:42}:seen"], ["7"]) == b"7"
    assert redis_cluster.owner("{v:42}").cmd("MGET", "{v:42}:last", "{v:42}:seen") == [b"7", b"7"]
    with pytest.raises(ValueError, match="slots"):
        script(["a", "b"], ["1"])  # two slots: refused before anything is sent
    fast.close()


def test_cluster_threads_each_get_their_own_connections(redis_cluster):
    """gthread workers call from several threads at once: one connection per node and
    thread, so no thread reads another's reply."""
    import threading

    fast = connect_fast(redis_cluster.url, 1)
    script = fast.script(SET_GET)
    wrong = []

    def run(t):
        for i in range(150):
            value = f"{t}-{i}"
            if script([f"visitor:{i % 40}:{t}"], [value]) != value.encode():
                wrong.append(value)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong
    fast.close()


def test_cluster_script_loads_itself_on_every_master(redis_cluster):
    fast = connect_fast(redis_cluster.url, 1)
    script = fast.script("return redis.call('SET', KEYS[1], 'v')")
    for i in range(30):
        script([f"s{i}"], [])
    for master in redis_cluster.masters():
        master.cmd("SCRIPT", "FLUSH")
    assert all(script([f"s{i}"], []) == b"OK" for i in range(30))  # NOSCRIPT -> EVAL, per node


def test_moved_after_a_slot_moved_refreshes_the_map(redis_cluster):
    fast = connect_fast(redis_cluster.url, 1)
    script = fast.script(SET_GET)
    key = "visitor:moving"
    assert script([key], ["before"]) == b"before"
    source = redis_cluster.owner(key)
    target = redis_cluster.move_slot(redis_cluster.slot(key))
    assert fast.owner(key) == source.addr  # the client has not seen the move yet
    generation = fast._generation
    assert fast.script(GET)([key], []) == b"before"  # MOVED, followed: the data moved along
    assert fast.owner(key) == target.addr and fast._generation > generation
    assert script([key], ["after"]) == b"after" and target.cmd("GET", key) == b"after"


def test_ask_during_a_migration_reaches_moved_keys_and_keeps_the_map(redis_cluster):
    fast = connect_fast(redis_cluster.url, 1)
    write, read = fast.script(SET_GET), fast.script(GET)
    keys = [f"{{visitor:9}}:{i}" for i in range(10)]  # one slot
    for k in keys:
        write([k], [k])
    slot = redis_cluster.slot(keys[0])
    step = redis_cluster.migration(slot).begin()
    moved = step.move(keys[:5])
    assert set(moved) == set(keys[:5]) and sorted(step.keys_left()) == sorted(k.encode() for k in keys[5:])
    generation = fast._generation
    for k in keys:  # moved ones through ASK to the target, the others from the source
        assert read([k], []) == k.encode()
    assert write([keys[0]], ["new"]) == b"new" and _asking_get(step.target, keys[0]) == b"new"
    # A new key of the migrating slot is created on the target (the source says ASK).
    assert write(["{visitor:9}:new"], ["n"]) == b"n" and _asking_get(step.target, "{visitor:9}:new") == b"n"
    with pytest.raises(redis.exceptions.AskError):
        step.source.cmd("GET", "{visitor:9}:new")
    # ASK does not touch the map: the slot is the source's until the move ends.
    assert fast._generation == generation and fast.owner(keys[0]) == step.source.addr
    # Keys on both sides of a migration: TRYAGAIN, reported as "cannot answer now".
    with pytest.raises(FastRedisError) as exc:
        write([keys[0], keys[9]], ["both"])
    assert "TRYAGAIN" in str(exc.value) and not isinstance(exc.value, FastReplyError)
    step.finish()
    assert read([keys[9]], []) == keys[9].encode() and fast.owner(keys[9]) == step.target.addr


def _asking_get(node, key):
    """GET on the importing node of a migration, which answers only after ASKING."""
    with node.client() as client:
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("ASKING")
        pipe.get(key)
        return pipe.execute()[1]


def test_a_frozen_master_costs_one_timeout_then_recovers(redis_cluster):
    fast = connect_fast(redis_cluster.url, 0.1)
    script = fast.script(SET_GET)
    master = redis_cluster.masters()[2]
    key = next(f"k{i}" for i in range(1000) if redis_cluster.owner(f"k{i}") is master)
    assert script([key], ["1"]) == b"1"
    node = fast._nodes[master.addr]
    sent = []
    roundtrip = node.roundtrip
    node.roundtrip = lambda packed: sent.append(packed) or roundtrip(packed)
    master.freeze()
    try:
        with pytest.raises(FastRedisError, match="timed out"):
            script([key], ["2"])
        # The map (from another node) still names the frozen master: it is not sent
        # there a second time, which would double the wait.
        assert len(sent) == 1
    finally:
        master.thaw()
    assert script([key], ["3"]) == b"3"


def _calls_through_failover(call, keys, pause=0.001, limit=20.0):
    """Calls round-robin until a whole round of keys succeeds after a failure; returns
    (calls, failures by kind, seconds from first to last failure)."""
    calls = failed = streak = 0
    kinds = {}
    first = last = None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        key = keys[calls % len(keys)]
        calls += 1
        try:
            call(key)
            streak += 1
            if first is not None and streak >= len(keys):
                return calls, kinds, last - first
        except FastRedisError as exc:
            kind = str(exc).split(":")[0].split(" ")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
            failed += 1
            streak = 0
            last = time.monotonic()
            first = first or last
        time.sleep(pause)
    raise AssertionError(f"calls still failing after {limit}s ({failed} of {calls} failed)")


def test_a_killed_master_is_replaced_without_a_new_client(redis_cluster, capsys):
    fast = connect_fast(redis_cluster.url, 0.2, 0.2, check_slots=True)
    script = fast.script(SET_GET)
    client = connect_client(redis_cluster.url, 1)  # redis-py's, made before: it must follow too
    keys = [f"visitor:{i}" for i in range(60)]
    for k in keys:
        script([k], ["1"])
    assert all(client.get(k) == b"1" for k in keys)
    victim = redis_cluster.masters()[1]
    victim_keys = [k for k in keys if redis_cluster.owner(k) is victim]
    killed, replica = redis_cluster.kill_master(victim, wait=False)
    calls, kinds, window = _calls_through_failover(lambda k: script([k], ["2"]), keys)
    assert kinds
    assert replica.info("replication")["role"] == "master"
    assert all(fast.owner(k) == replica.addr for k in victim_keys)
    assert all(replica.cmd("GET", k) == b"2" for k in victim_keys)
    with capsys.disabled():
        print(f"\n  cluster failover: {sum(kinds.values())} of {calls} calls failed over {window:.2f} s"
              f" (1 call/ms; {kinds})")
    assert all(client.get(k) == b"2" for k in keys)
    client.close()


# -- Sentinel ------------------------------------------------------------------------------

def test_sentinel_clients_talk_to_the_master(redis_sentinel):
    client = connect_client(redis_sentinel.url, 1)
    assert client.set("a", "1") and client.get("a") == b"1"
    assert redis_sentinel.primary().cmd("GET", "a") == b"1"
    fast = connect_fast(redis_sentinel.url, 1)
    assert isinstance(fast, SentinelFast)
    assert fast.script(SET_GET)(["b"], ["2"]) == b"2"
    assert fast.master_addr == redis_sentinel.primary().addr
    client.close()
    fast.close()


def test_sentinel_without_that_master_is_unreachable_not_an_error_reply(redis_sentinel):
    url = redis_sentinel.url.replace("/banners", "/nosuchmaster")
    with pytest.raises(FastRedisError, match="no sentinel names a master 'nosuchmaster'") as exc:
        connect_fast(url, 1).script(GET)(["a"], [])
    assert not isinstance(exc.value, FastReplyError)
    with pytest.raises(redis.ConnectionError):
        connect_client(url, 1).get("a")


def test_sentinel_failover_without_a_new_client(redis_sentinel, capsys):
    fast = connect_fast(redis_sentinel.url, 0.2, 0.2)
    client = connect_client(redis_sentinel.url, 0.5)
    script = fast.script(SET_GET)
    assert script(["k"], ["1"]) == b"1" and client.get("k") == b"1"
    old, new = redis_sentinel.kill_primary(wait=False)
    calls, kinds, window = _calls_through_failover(lambda k: script([k], ["2"]), ["k"])
    assert kinds and fast.master_addr == new.addr
    assert new.info("replication")["role"] == "master" and new.cmd("GET", "k") == b"2"
    with capsys.disabled():
        print(f"\n  sentinel failover: {sum(kinds.values())} of {calls} calls failed over {window:.2f} s"
              f" (1 call/ms; {kinds})")
    # redis-py's client, made before: once every sentinel names the new master, its dead
    # connection is retried once, on a new connection to it.  (Right at the switch, no
    # sentinel may report a master in good state yet: redis-py then raises
    # MasterNotFoundError, a ConnectionError.)
    redis_sentinel.wait_promoted(new)
    assert client.get("k") == b"2"
    client.close()


def test_a_demoted_master_answers_readonly_and_the_client_moves_on(redis_sentinel):
    """A client still sending to a server that became a replica (it learnt the address
    before the switch) gets READONLY, asks the sentinels again and goes to the master."""
    fast = connect_fast(redis_sentinel.url, 1)
    script = fast.script(SET_GET)
    replica = redis_sentinel.replica()
    with pytest.raises(FastReplyError, match="READONLY"):
        FastRedis(replica.url, 1).script(SET_GET)(["k"], ["x"])
    fast._master = FastRedis(replica.url, 1)  # as if it had been the master
    fast.master_addr = replica.addr
    assert script(["k"], ["1"]) == b"1"
    assert fast.master_addr == redis_sentinel.primary().addr
    assert redis_sentinel.primary().cmd("GET", "k") == b"1"
