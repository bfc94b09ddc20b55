"""Redis stopped, restarted and frozen under a serving app (a real redis-server process)."""

import pytest

from tests.harness import RedisProcess
from tests.serving import ADMIN, STANDARD, make_client, publish_rows
from banner_server.clients.detect import connect_client as redis_client
from banner_server.clients.fast import FastRedis

JSON = {"Accept": "application/json", "User-Agent": "t"}


class FakeMonotonic:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def proc():
    p = RedisProcess().start()
    yield p
    p.close()


@pytest.fixture(params=["redis-py", "fastredis"])
def kind(request):
    """Each fault is met by both pick clients: redis-py's Script and FastRedis (production's)."""
    return request.param


def serving(proc, kind, **kw):
    mono = FakeMonotonic()
    fast = FastRedis(proc.url, 0.05) if kind == "fastredis" else None
    client, store = make_client(redis_client(proc.url, 0.05), monotonic=mono, retry_after=1.0, fast=fast, **kw)
    return client, store, mono


def test_redis_killed_then_back(proc, kind):
    publish_rows(proc.client(), STANDARD)
    client, store, mono = serving(proc, kind)
    cookie = {**JSON, "Cookie": "visitor_id=" + "a" * 22}
    seen = [client.simulate_get("/campaigns/7", headers=cookie).json["banner_id"]]
    proc.stop()
    for _ in range(40):
        res = client.simulate_get("/campaigns/7", headers=cookie)
        assert res.status_code == 200
        seen.append(res.json["banner_id"])
    assert all(a != b for a, b in zip(seen, seen[1:]))  # no-repeat kept from the worker's memory
    assert set(seen) <= {101, 200, 300, 400, 500}
    assert client.simulate_get("/campaigns/999").status_code == 404
    ready = client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN)
    assert ready.status_code == 503 and ready.json["status"] == "degraded"
    assert ready.json["serving_from_snapshot"] is True
    assert 'banners_degraded_answers_total{reason="redis_unreachable"}' in client.simulate_get("/metrics", headers=ADMIN).text

    proc.start()  # comes back empty (no persistence in this test)
    mono.t += 2
    assert client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN).status_code == 503  # reachable, nothing published
    publish_rows(proc.client(), [(q, 7, [1, 2]) for q in (1, 2, 3, 4)])
    mono.t += 2
    assert client.simulate_get("/campaigns/7", headers=JSON).json["banner_id"] in (1, 2)
    assert client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN).status_code == 200
    assert not store.degraded


def test_redis_restarted_empty_keeps_serving_snapshot_until_a_load(proc, kind):
    """Redis answers but lost its data: each worker draws from its snapshot, and Redis
    still remembers the visitor, so no-repeat holds across workers (and hosts)."""
    publish_rows(proc.client(), STANDARD)
    client, store, mono = serving(proc, kind)
    other, _, other_mono = serving(proc, kind)  # a second worker, with a memory of its own
    assert client.simulate_get("/campaigns/7").status_code == 200
    assert other.simulate_get("/campaigns/7").status_code == 200
    version = store.version
    proc.stop()
    proc.start()
    mono.t += 2
    other_mono.t += 2
    cookie = {**JSON, "Cookie": "visitor_id=" + "e" * 22}
    seen = []
    for i in range(60):
        res = (client if i % 2 else other).simulate_get("/campaigns/7", headers=cookie)
        assert res.status_code == 200 and res.json["banner_id"] in (101, 200, 300, 400, 500)
        assert res.headers["x-banners-version"] == version  # never empty: the snapshot's version
        seen.append(res.json["banner_id"])
    assert all(a != b for a, b in zip(seen, seen[1:]))
    assert 'banners_degraded_answers_total{reason="redis_empty"} 30' in client.simulate_get("/metrics", headers=ADMIN).text
    ready = client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN)
    assert ready.status_code == 503 and "no published version" in ready.json["reason"]
    publish_rows(proc.client(), [(q, 7, [5, 6]) for q in (1, 2, 3, 4)])
    assert client.simulate_get("/campaigns/7", headers=JSON).json["banner_id"] in (5, 6)
    assert client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN).status_code == 200


def test_frozen_redis_is_not_waited_for(proc, kind):
    publish_rows(proc.client(), STANDARD)
    client, store, mono = serving(proc, kind)
    client.simulate_get("/campaigns/7")
    calls = []
    real = store._pick

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    store._pick = counting
    proc.freeze()
    try:
        for _ in range(30):
            assert client.simulate_get("/campaigns/7").status_code == 200
        # one probe timed out (50 ms), the rest were answered from the snapshot
        assert len(calls) == 1 and store.degraded
        mono.t += 1.5
        client.simulate_get("/campaigns/7")
        assert len(calls) == 2
    finally:
        proc.thaw()
    mono.t += 1.5
    for _ in range(5):
        client.simulate_get("/campaigns/7")
    assert not store.degraded and len(calls) >= 3


def test_worker_that_never_saw_data_answers_503_with_retry_after(proc, kind):
    proc.stop()
    client, store, mono = serving(proc, kind)
    res = client.simulate_get("/campaigns/7", headers=JSON)
    assert res.status_code == 503 and res.headers["retry-after"] == "5"
    assert "error" in res.json
    assert client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN).status_code == 503
    assert client.simulate_get("/healthz").status_code == 200
    assert client.simulate_get("/").status_code == 200


def test_a_load_into_a_redis_that_lost_its_data_replaces_the_snapshot(proc, kind):
    """Redis restarted empty forgets the version counter too: the next load must not
    be taken for the version the worker already holds (it was, when ids restarted at 1)."""
    publish_rows(proc.client(), STANDARD)
    client, store, mono = serving(proc, kind)
    assert [c["campaign_id"] for c in client.simulate_get("/", headers=JSON).json["campaigns"]] == [7, 8]
    proc.stop()
    proc.start()  # empty
    publish_rows(proc.client(), [(q, 7, [5, 6]) for q in (1, 2, 3, 4)])
    mono.t += 2
    assert client.simulate_get("/campaigns/7", headers=JSON).json["banner_id"] in (5, 6)
    assert [c["campaign_id"] for c in client.simulate_get("/", headers=JSON).json["campaigns"]] == [7]
    proc.stop()  # now the snapshot answers: it must be the new load's
    mono.t += 2
    for _ in range(10):
        assert client.simulate_get("/campaigns/7", headers=JSON).json["banner_id"] in (5, 6)


def test_a_snapshot_that_fails_to_load_is_retried_once_per_second_not_per_request(proc, kind, monkeypatch):
    import redis

    from banner_server.web import snapshot as store_mod

    publish_rows(proc.client(), STANDARD)
    client, store, mono = serving(proc, kind)
    client.simulate_get("/campaigns/7")
    reads = []

    def too_big(*a, **kw):
        reads.append(1)
        raise redis.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(store_mod, "read_quarter_ids", too_big)
    new = publish_rows(proc.client(), [(q, 7, [5, 6]) for q in (1, 2, 3, 4)])
    for _ in range(20):
        res = client.simulate_get("/campaigns/7", headers=JSON)
        assert res.status_code == 200 and res.json["banner_id"] in (5, 6)  # the picks still use Redis
        assert res.headers["X-Banners-Version"] == new
    assert len(reads) == 1
    monkeypatch.undo()
    mono.t += 1.5
    client.simulate_get("/campaigns/7")
    assert store.version == new and store.selections[1][7] == (5, 6)


def test_a_connection_redis_closed_is_reopened_not_degraded(proc, kind):
    """CLIENT KILL (or Redis' idle `timeout`, a proxy, a failover) closes the worker's
    connections: the next pick reconnects at once instead of answering from the
    snapshot, which would not know a campaign the current version added."""
    publish_rows(proc.client(), STANDARD)
    client, store, mono = serving(proc, kind)
    assert client.simulate_get("/campaigns/7").status_code == 200
    publish_rows(proc.client(), STANDARD + [(1, 777, [7771, 7772])])
    admin = proc.client()
    for _ in range(3):
        admin.client_kill_filter(_type="normal", skipme=True)
        res = client.simulate_get("/campaigns/777", headers=JSON)
        assert res.status_code == 200 and res.json["banner_id"] in (7771, 7772)
        assert client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN).status_code == 200
    assert not store.degraded
    assert "banners_degraded_answers_total{" not in client.simulate_get("/metrics", headers=ADMIN).text


def test_redis_out_of_memory_is_its_own_reason_and_not_ready(proc, kind):
    """maxmemory with noeviction: reads work, the pick's write fails.  The answers come
    from the snapshot, the metric says why, and /readyz says not ready until picks work."""
    publish_rows(proc.client(), STANDARD)
    client, store, mono = serving(proc, kind)
    assert client.simulate_get("/campaigns/7").status_code == 200
    admin = proc.client()
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # below what is used: every write is refused
    try:
        for _ in range(5):
            assert client.simulate_get("/campaigns/7", headers=JSON).status_code == 200
        metrics = client.simulate_get("/metrics", headers=ADMIN).text
        assert 'banners_degraded_answers_total{reason="redis_oom"} 5' in metrics
        assert "redis_unreachable" not in metrics
        ready = client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN)
        assert ready.status_code == 503 and "redis_oom" in ready.json["reason"] and "OOM" in ready.json["reason"]
    finally:
        admin.config_set("maxmemory", 0)
    ready = client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN)  # probes the pick: it works again
    assert ready.status_code == 200, ready.json
    res = client.simulate_get("/campaigns/7", headers=JSON)
    assert res.status_code == 200 and not store.degraded
