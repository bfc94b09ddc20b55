"""The selections in pieces (format 2): what the publisher writes, what a worker holds
and fetches, degraded serving from the compact snapshot, and versions published as one
JSON (format 1) still served, rolled back to and removed."""

import json

import pytest

from banner_server.layout import pieces
from banner_server.layout.catalog import read_selections
from banner_server.layout.pieces import QuarterIds, manifest_of
from loader.publish import KEEP_VERSIONS, rollback
from tests.harness import RedisProcess
from tests.serving import ADMIN, KEYS, make_client, publish_rows

JSON = {"Accept": "application/json", "User-Agent": "t"}
# 25 campaigns in quarter 1 (3 banners each), 5 in the others: pieces of 4 campaigns
# make 7 pieces in quarter 1.
ROWS = ([(1, c, [c * 10, c * 10 + 1, c * 10 + 2]) for c in range(1, 26)]
        + [(q, c, [c * 10 + q]) for q in (2, 3, 4) for c in range(1, 6)])


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(pieces, "SNAPSHOT_CAMPAIGNS", 4)


def version_keys_in_redis(r, ver):
    return sorted(k.decode() for k in r.scan_iter(match=f"*v:{ver}:*", count=1000))


def test_a_version_is_written_in_pieces_and_read_whole(any_redis, small_pieces):
    ver = publish_rows(any_redis, ROWS)
    manifest = manifest_of(any_redis.get(KEYS.selections(ver)))
    assert manifest["format"] == 2 and len(manifest["quarters"]["1"]["firsts"]) == 7
    assert manifest["quarters"]["1"]["firsts"][:3] == [1, 5, 9]
    _, records = read_selections(any_redis, KEYS)
    assert [(r["quarter"], r["campaign_id"], [b["banner_id"] for b in r["banners"]]) for r in records] == \
        sorted((q, c, ids) for q, c, ids in ROWS)


def test_no_value_of_a_version_holds_the_whole_selections(real_redis, small_pieces):
    """The single JSON was one 212 MB SET on the 100k-campaign set (Redis held for
    seconds, the load lost its lease): now no string is more than a piece."""
    ver = publish_rows(real_redis, ROWS)
    whole = len(json.dumps(read_selections(real_redis, KEYS)[1]))
    strings = [real_redis.strlen(k) for k in version_keys_in_redis(real_redis, ver) if real_redis.type(k) == b"string"]
    assert max(strings) < whole / 4


def test_cleanup_removes_every_key_of_a_pieced_version(any_redis, small_pieces):
    first = publish_rows(any_redis, ROWS)
    assert len(version_keys_in_redis(any_redis, first)) > 30
    for _ in range(KEEP_VERSIONS):
        publish_rows(any_redis, ROWS)
    assert version_keys_in_redis(any_redis, first) == []


def test_quarter_ids_read_like_the_dict_they_replace():
    ids = QuarterIds.from_rows([(3, "top_clicks", 0, [30, 31]), (9, "top_revenue_x", 6, [90])], [])
    piece = QuarterIds(ids.scenarios)
    piece.extend(ids.encode())
    piece.extend(QuarterIds.from_rows([(12, "top_clicks", 0, [120, 121, 122])], ids.scenarios).encode())
    assert list(piece) == [3, 9, 12] and len(piece) == 3
    assert piece[3] == (30, 31) and piece.get(12) == (120, 121, 122) and piece.get(4) is None
    assert 9 in piece and 10 not in piece
    assert piece.row(1) == (9, "top_revenue_x", 6, 1)
    with pytest.raises(KeyError):
        piece[5]


def test_a_worker_holds_only_the_quarter_served_and_the_next(any_redis, small_pieces):
    publish_rows(any_redis, ROWS)
    client, store = make_client(any_redis)
    now = {"q": 1}
    store.quarter_now = lambda: now["q"]
    store.selections = None
    store.version = None
    store.ensure_snapshot()
    assert sorted(store.selections) == [1, 2] and store.quarters == (1, 2, 3, 4)
    assert all(isinstance(v, QuarterIds) for v in store.selections.values())
    assert store.selections[1][25] == (250, 251, 252)
    now["q"] = 4  # the hour turned: /readyz (the load balancer's check) fetches the new one
    client.simulate_get("/readyz")
    assert sorted(store.selections) == [1, 4]
    # The dashboard's list of another quarter reads its pieces without keeping them.
    res = client.simulate_get("/dashboard", query_string="quarter=3", headers={**ADMIN, **JSON})
    assert res.status_code == 200 and [c["campaign_id"] for c in res.json["campaigns"]] == [1, 2, 3, 4, 5]
    assert sorted(store.selections) == [1, 4]
    for quarter in (1, 2):  # held, and read a piece at a time
        found = client.simulate_get("/dashboard", query_string=f"quarter={quarter}&q=5", headers={**ADMIN, **JSON})
        assert [c["campaign_id"] for c in found.json["campaigns"]] == [5]
    paged = client.simulate_get("/dashboard", query_string="quarter=2&page=1", headers={**ADMIN, **JSON})
    assert [c["campaign_id"] for c in paged.json["campaigns"]] == [1, 2, 3, 4, 5]
    assert sorted(store.selections) == [1, 4]
    page = client.simulate_get("/dashboard/campaigns/17", headers={**ADMIN, **JSON})
    assert page.status_code == 200 and [b["banner_id"] for b in page.json["quarters"][0]["banners"]] == [170, 171, 172]


def test_degraded_answers_come_from_the_compact_snapshot(small_pieces):
    proc = RedisProcess().start()
    try:
        publish_rows(proc.client(), ROWS)
        from banner_server.clients.detect import connect_client

        client, store = make_client(connect_client(proc.url, 0.05), pinned=1)
        store.quarter_now = lambda: 1
        store.version, store.selections = None, None
        assert client.simulate_get("/campaigns/22", headers=JSON).status_code == 200
        proc.stop()
        for campaign in (1, 9, 22, 25):  # in four different pieces
            res = client.simulate_get(f"/campaigns/{campaign}", headers=JSON)
            assert res.status_code == 200 and res.json["banner_id"] in (campaign * 10, campaign * 10 + 1,
                                                                         campaign * 10 + 2)
        assert client.simulate_get("/campaigns/26", headers=JSON).status_code == 404
        assert sorted(store.selections) == [1, 2]
    finally:
        proc.close()


def test_a_quarter_never_fetched_is_a_503_not_a_404_when_redis_is_away(small_pieces):
    proc = RedisProcess().start()
    try:
        publish_rows(proc.client(), ROWS)
        from banner_server.clients.detect import connect_client

        client, store = make_client(connect_client(proc.url, 0.05), pinned=3)
        store.quarter_now = lambda: 1  # holds quarters 1 and 2 only
        store.version, store.selections = None, None
        store.ensure_snapshot()
        proc.stop()
        assert client.simulate_get("/campaigns/2", headers=JSON).status_code == 503
    finally:
        proc.close()


def as_format_1(r, ver):
    """Rewrites `ver` as the publisher before the pieces wrote it: its records as one JSON."""
    _, records = read_selections(r, KEYS, ver)
    manifest = manifest_of(r.get(KEYS.selections(ver)))
    for q, i in pieces.pieces(manifest):
        r.delete(pieces.part_key(KEYS, ver, q, i), pieces.ids_key(KEYS, ver, q, i))
    r.set(KEYS.selections(ver), json.dumps(records))
    return records


def test_a_format_1_version_is_served_shown_rolled_back_to_and_removed(any_redis, small_pieces):
    old = publish_rows(any_redis, ROWS)
    records = as_format_1(any_redis, old)
    assert read_selections(any_redis, KEYS) == (old, records)
    client, store = make_client(any_redis)
    store.ensure_snapshot()
    assert store.version == old and store.selections[1][25] == (250, 251, 252)
    page = client.simulate_get("/dashboard/campaigns/25", headers={**ADMIN, **JSON})
    assert page.status_code == 200
    new = publish_rows(any_redis, [(q, 7, [1, 2]) for q in (1, 2, 3, 4)])
    assert rollback(any_redis, KEYS) == (new, old)
    assert read_selections(any_redis, KEYS) == (old, records)
    publish_rows(any_redis, ROWS)
    for _ in range(KEEP_VERSIONS):
        publish_rows(any_redis, ROWS)
    assert version_keys_in_redis(any_redis, old) == []
