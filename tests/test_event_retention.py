"""Recorded events are billing data (issue 19): never evicted, one click per click URL,
ids that never repeat, export a read, retention explicit (EventStore.prune), the
servers' own hours, served counts from what was recorded.

The flood runs on the real binary with a small maxmemory and `volatile-lru`; the rest
on fakeredis and the real binary (any_redis).  Every clock is injected.
"""

import datetime as dt
import random
import re
from zoneinfo import ZoneInfo

import falcon
import falcon.testing
import pytest

from banner_server.layout.events import EventStore, Hour, hour_end, hour_stamp, new_click_id, token_digest
from banner_server.layout.keys import Keys
from banner_server.layout.retention import CLICK_TTL
from banner_server.web.tokens import ClickSigner
from banner_server.web.postbacks import ConversionResource
from banner_server.web.tracking import ClickResource
from tests.harness import RedisProcess

ZONE = ZoneInfo("Europe/Amsterdam")
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # UTC+05:45
KEYS = Keys()
SIGNER = ClickSigner(b"k" * 32)
KEEP = 7200
DAY = 86400


def at(hour: int, minute: int, second: int = 0, day: int = 28, tz=ZONE) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, second, tzinfo=tz)


def store_on(client, keep=KEEP, seed=None) -> EventStore:
    return EventStore(client, KEYS, keep_events=keep, rng=random.Random(seed) if seed is not None else None)


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def app_for(events, clock, visitor=None) -> falcon.testing.TestClient:
    app = falcon.App()
    landing = lambda campaign: ("Shop", "https://shop.example/")  # noqa: E731
    app.add_route("/click/{token}", ClickResource(events, SIGNER, landing, clock, visitor=visitor))
    app.add_route("/conversions", ConversionResource(events, "postback-token-0123456789", clock))
    return falcon.testing.TestClient(app)


def click_id_of(res) -> int:
    assert res.status_code == 302, res.text
    return int(re.search(r"click_id=(\d+)", res.headers["Location"]).group(1))


def postback(client, click_id, conversion_id, revenue=1):
    return client.simulate_post("/conversions", json={"click_id": click_id, "conversion_id": conversion_id,
                                                      "revenue": revenue},
                                headers={"Authorization": "Bearer postback-token-0123456789"})


# -- 1. traffic never evicts events ------------------------------------------------------

def test_a_flood_of_fresh_visitors_at_maxmemory_evicts_visitors_only(tmp_path):
    """The issue's flood: at the cap, `volatile-lru` evicted recorded clicks and the hour
    indexes with the visitors (34 event keys -> 1).  Nothing recorded has a TTL now."""
    from banner_server.web.store import SelectionStore
    from tests.serving import STANDARD, publish_rows

    proc = RedisProcess("--maxmemory-policy", "volatile-lru").start()
    try:
        r = proc.client()
        publish_rows(r, STANDARD)
        store = SelectionStore(r, KEYS, visitor_ttl=86400)
        store.ensure_snapshot()
        hour = hour_stamp(at(23, 10))
        served = {}
        for i in range(40):
            pick = store.pick(1, 7, f"c:early{i}", hour=hour)
            served[pick.banner_id] = served.get(pick.banner_id, 0) + 1
        events = store_on(r)
        clicks = [events.record_click(7, 100 + i % 3, int(at(23, 9).timestamp()), at(23, 11, i),
                                      token=SIGNER.sign(7, 100 + i % 3, int(at(23, 9).timestamp()), f"v{i}"))
                  for i in range(30)]
        assert events.record_conversion(clicks[0], 1, "12.5", at(23, 12)).outcome == "created"
        before = events.read_hour(str(hour))
        r.config_set("maxmemory", int(r.info("memory")["used_memory"]) + 400_000)
        n = 0
        while events.evicted_keys() == 0:
            for _ in range(500):
                store.pick(1, 7, f"c:flood{n:022d}", hour=hour)  # a fresh visitor id each
                n += 1
            assert n < 200_000, "no eviction: maxmemory not reached"
        for _ in range(2000):  # well past the bound
            store.pick(1, 7, f"c:flood{n:022d}", hour=hour)
            n += 1
        assert not store.degraded  # evicting, not refusing writes
        after = events.read_hour(str(hour))
        assert after.clicks == before.clicks and after.conversions == before.conversions
        assert sum(c for rows in after.impressions.values() for *_, c in rows) == 40 + n
        assert all(events.click(c, tz=ZONE) is not None for c in clicks)
        assert events.record_conversion(clicks[0], 1, "12.5", at(23, 13)).outcome == "same"  # not counted again
        assert events.hour_end(str(hour)) == hour_end(at(23, 10))
        # what was evicted: visitors only (each pick made one; LRU is sampled, so which ones is approximate)
        assert len(r.keys("*:vis:*")) == 40 + n - events.evicted_keys()
        assert r.exists(KEYS.visitor(f"c:flood{n - 1:022d}"))
    finally:
        proc.stop()


# -- 2. a click URL records one click ------------------------------------------------------

def test_a_replayed_click_url_answers_the_same_click_id_and_records_nothing(any_redis):
    clock = Clock(at(23, 11))
    client = app_for(store_on(any_redis), clock)
    token = SIGNER.sign(7, 100, int(at(23, 10).timestamp()), "c:alice")
    first = click_id_of(client.simulate_get(f"/click/{token}"))
    for _ in range(5):
        clock.now += dt.timedelta(minutes=20)  # later, and in the next hour too
        assert click_id_of(client.simulate_get(f"/click/{token}")) == first
    events = store_on(any_redis)
    assert events.read_hour("2026-11-28T23").counts() == {1: (0, 1, 0)}
    assert events.read_hour("2026-11-29T00").empty
    again = events.record_click(7, 100, int(at(23, 10).timestamp()), at(23, 50), token=token)
    assert again == first and again.replayed
    # another visitor's URL of the same banner in the same second is a click of its own
    other = SIGNER.sign(7, 100, int(at(23, 10).timestamp()), "c:bob")
    assert click_id_of(client.simulate_get(f"/click/{other}")) != first


def test_a_click_by_another_visitor_than_the_token_was_shown_to_is_flagged(any_redis):
    visitor = {"id": "c:alice"}
    client = app_for(store_on(any_redis), Clock(at(23, 11)), visitor=lambda req: visitor["id"])
    served = int(at(23, 10).timestamp())
    mine = click_id_of(client.simulate_get(f"/click/{SIGNER.sign(7, 100, served, 'c:alice')}"))
    visitor["id"] = "c:mallory"
    theirs = click_id_of(client.simulate_get(f"/click/{SIGNER.sign(7, 101, served, 'c:alice')}"))
    events = store_on(any_redis)
    assert events.click(mine, tz=ZONE).other_visitor is False
    assert events.click(theirs, tz=ZONE).other_visitor is True
    assert len(events.read_hour("2026-11-28T23").clicks[1]) == 2  # recorded all the same (classified later)


# -- 3. ids never repeat -------------------------------------------------------------------

def test_click_ids_never_repeat_after_redis_lost_its_data(any_redis):
    """The issue's kill -9: the INCR counter restarted and handed 1-5 out again, and a
    postback of campaign 1's click 1 credited campaign 2."""
    clock = Clock(at(23, 11))
    events = store_on(any_redis)
    client = app_for(events, clock)
    served = int(at(23, 10).timestamp())
    before = [click_id_of(client.simulate_get(f"/click/{SIGNER.sign(1, 10, served, f'v{i}')}")) for i in range(5)]
    any_redis.flushall()  # a restart without data, a failover to a replica that lagged
    clock.now += dt.timedelta(seconds=1)
    after = [click_id_of(client.simulate_get(f"/click/{SIGNER.sign(2, 20, served, f'v{i}')}")) for i in range(5)]
    assert not set(before) & set(after) and len(set(after)) == 5
    assert postback(client, before[0], 1).status_code == 404  # gone with the data: never another campaign's
    assert postback(client, after[0], 1).status_code == 201
    assert events.read_hour("2026-11-28T23").conversions == {1: [(1, after[0], "1")]}
    assert events.click(after[0], tz=ZONE).campaign == 2


def test_a_postback_is_credited_to_its_clicks_campaign_only(any_redis):
    events = store_on(any_redis)
    client = app_for(events, Clock(at(23, 30)))
    a = events.record_click(1, 10, 0, at(23, 20))
    b = events.record_click(2, 20, 0, at(23, 20))
    assert postback(client, b, 7, 3).status_code == 201
    rows = events.read_hour("2026-11-28T23")
    campaign_of = {c: camp for rows_ in rows.clicks.values() for c, _, camp in rows_}
    assert rows.conversions == {2: [(7, b, "3")]} and campaign_of[b] == 2 and campaign_of[a] == 1


@pytest.mark.parametrize("groups", [1, 3, 16, 1024])
def test_click_ids_fall_in_the_group_asked_for_and_below_2_63(groups):
    rng = random.Random(groups)
    ms = int(at(23, 10).timestamp() * 1000)
    for group in range(min(groups, 40)):
        for _ in range(50):
            ident = new_click_id(ms, group, groups, rng)
            assert ident % groups == group and ident >> 20 == ms and 0 < ident < 2**63
    assert new_click_id(2**43 - 1, 0, 1, rng) < 2**63  # the year 2248


def test_a_taken_id_is_drawn_again(any_redis):
    events = store_on(any_redis, seed=5)
    first = events.record_click(7, 100, 0, at(23, 20))
    events.rng = random.Random(5)  # the same draw again: HSETNX refuses it, the next draw is used
    second = events.record_click(8, 200, 0, at(23, 20))
    assert second != first and events.click(first, tz=ZONE).campaign == 7


# -- 4. export is a read; the servers' own hours --------------------------------------------

def test_reading_an_hour_twice_gives_the_same_and_removes_nothing(any_redis):
    events = store_on(any_redis)
    for m in range(5):
        c = events.record_click(7, 100 + m, 0, at(23, m * 10))
        events.record_conversion(c, 100 + m, f"{m}.5", at(23, 55))
    first = events.read_hour("2026-11-28T23")
    assert first.counts() == {1: (0, 2, 2), 2: (0, 1, 1), 3: (0, 2, 2)}
    assert events.read_hour("2026-11-28T23") == first


def test_which_hours_are_over_is_the_servers_hour_whatever_the_callers_zone(any_redis):
    """The issue's `--tz Asia/Kathmandu` on a UTC server exported the running hour."""
    events = store_on(any_redis)
    utc = dt.timezone.utc
    events.record_click(7, 100, 0, dt.datetime(2026, 11, 28, 10, 20, tzinfo=utc))  # UTC server: hour 10 UTC
    events.record_click(7, 100, 0, dt.datetime(2026, 11, 28, 9, 20, tzinfo=utc))
    running = dt.datetime(2026, 11, 28, 10, 59, tzinfo=utc).astimezone(KATHMANDU)  # 16:44 there
    assert not events.hour_is_over("2026-11-28T10", running)
    assert events.hour_is_over("2026-11-28T09", running)
    assert events.closed_hours(running) == ["2026-11-28T09"]
    over = dt.datetime(2026, 11, 28, 11, 0, tzinfo=utc).astimezone(KATHMANDU)
    assert events.closed_hours(over) == ["2026-11-28T09", "2026-11-28T10"]
    assert not events.hour_is_over("2026-11-28T08", over)  # nothing recorded: not a closed hour
    assert events.hour_end("2026-11-28T10") == int(dt.datetime(2026, 11, 28, 11, tzinfo=utc).timestamp())


def test_hour_ends_are_exact_off_the_hour_zones_too():
    when = dt.datetime(2026, 11, 28, 10, 14, 30, 500, tzinfo=KATHMANDU)
    assert hour_end(when) == int(dt.datetime(2026, 11, 28, 11, 0, tzinfo=KATHMANDU).timestamp())
    stamp = hour_stamp(when)
    assert stamp == "2026-11-28T10" and isinstance(stamp, str) and stamp.end == hour_end(when)


def test_picks_with_a_stamped_hour_count_on_every_client(server_redis):
    """An `Hour` is a str subclass: the fast client packs exact types, so the store
    hands it plain strings (found when the pick raised TypeError on FastRedis)."""
    from banner_server.web.store import SelectionStore
    from tests.serving import STANDARD, publish_rows

    client, fast = server_redis
    publish_rows(client, STANDARD)
    store = SelectionStore(client, KEYS, fast=fast)
    store.ensure_snapshot()
    for i in range(5):
        assert not store.pick(1, 7, f"c:v{i}", hour=hour_stamp(at(23, 10))).degraded
    client.delete(KEYS.current, KEYS.group_currents[0])  # Redis without `current`: the record script
    assert store.pick(1, 7, "c:w", hour=hour_stamp(at(23, 10))).degraded == "redis_empty"
    assert sum(store_on(client).impressions_since(at(23, 20), hours=1).values()) == 6
    assert client.zscore(KEYS.hours(0), "2026-11-28T23") == hour_end(at(23, 10))


def test_the_pick_enters_its_hour_exactly_and_an_upper_bound_gives_way(any_redis):
    from banner_server.web.store import SelectionStore
    from tests.serving import STANDARD, publish_rows

    publish_rows(any_redis, STANDARD)
    store = SelectionStore(any_redis, KEYS)
    store.ensure_snapshot()
    store.pick(1, 7, "c:a", hour="2026-11-28T23")  # a plain name: an upper bound (now + 1 h)
    bound = any_redis.zscore(KEYS.hours(0), "2026-11-28T23")
    assert bound is not None
    store = SelectionStore(any_redis, KEYS)  # another worker, whose clock stamps its hours
    store.ensure_snapshot()
    store.pick(1, 9 if 9 in store.selections[1] else 7, "c:b", hour=Hour("2026-11-28T23", 1_000))
    store.pick(2, next(iter(store.selections[2])), "c:c", hour=Hour("2026-11-28T23", 1_000))
    assert any_redis.zscore(KEYS.hours(0), "2026-11-28T23") == 1_000  # LT: the least, the exact one


# -- retention --------------------------------------------------------------------------------

def test_prune_removes_only_what_is_older_than_its_retention(any_redis):
    events = store_on(any_redis, keep=KEEP)
    served = int(at(21, 59).timestamp())
    old_token = SIGNER.sign(7, 100, served, "c:old")
    old = events.record_click(7, 100, served, at(22, 10), token=old_token)
    events.record_conversion(old, 1, "2", at(22, 20))
    any_redis.hincrby(KEYS.impressions("2026-11-28T22", 1, 0, 7), "7:100", 4)
    fresh = int(at(23, 39).timestamp())
    new = events.record_click(7, 101, fresh, at(23, 40), token=SIGNER.sign(7, 101, fresh, "x"))
    any_redis.hincrby(KEYS.impressions("2026-11-28T23", 3, 0, 7), "7:101", 2)

    # 23:00 + 2 h: hour 22 (ended 23:00) is past --keep-events; hour 23 not
    assert events.prune(at(1, 0, day=29)) == {"imp": 2, "tok": 0, "rec": 0}  # hours 21 (served) and 22
    assert not any_redis.exists(KEYS.impressions("2026-11-28T22", 1, 0, 7))
    assert any_redis.exists(KEYS.impressions("2026-11-28T23", 3, 0, 7))
    assert events.click(old, tz=ZONE) is not None  # a postback may name it for 30 days
    assert events.record_click(7, 100, served, at(1, 0, day=29), token=old_token) == old  # token still known
    assert events.prune(at(1, 0, day=29)) == {"imp": 0, "tok": 0, "rec": 0}  # once per tier

    # 25 h after: the old hours' token index goes (the token expired an hour before)
    events.prune(at(23, 1, day=29))
    assert not any_redis.exists(KEYS.click_tokens("2026-11-28T21", 0))
    assert any_redis.exists(KEYS.click_tokens("2026-11-28T23", 0))

    # 30 days after hour 22: its clicks, conversion index and conversion records go, and it
    # leaves the registry; hour 23 stays
    late = at(23, 0) + dt.timedelta(seconds=CLICK_TTL)
    events.prune(late)
    assert events.click(old, tz=ZONE) is None and not any_redis.exists(KEYS.conversion(1))
    assert events.read_hour("2026-11-28T22").empty
    assert events.click(new, tz=ZONE) is not None and "2026-11-28T23" in events.hour_ends()
    assert "2026-11-28T22" not in events.hour_ends()
    events.prune(late + dt.timedelta(hours=1))
    assert not any_redis.keys("*clicks:*") and not any_redis.keys("*conv*") and not any_redis.keys("*imp:*")
    assert not any_redis.keys("*tok:*") and events.hour_ends() == {}


def test_one_worker_of_the_fleet_prunes_per_period(any_redis):
    a, b = store_on(any_redis), store_on(any_redis)
    events = a
    events.record_click(7, 100, 0, at(22, 10))
    now = at(1, 0, day=29)
    assert a.maybe_prune(now, every=600) == {"imp": 1, "tok": 0, "rec": 0}
    assert b.maybe_prune(now, every=600) is None  # the lease is taken
    assert 0 < any_redis.ttl(KEYS.prune_lease) <= 600
    any_redis.delete(KEYS.prune_lease)  # what its expiry does
    assert b.maybe_prune(now, every=600) is None  # b tried a moment ago: no round trip until a period passed
    assert any_redis.set(KEYS.prune_lease, "x", nx=True, ex=600)  # (so the lease is not asked for)
    any_redis.delete(KEYS.prune_lease)
    assert b.maybe_prune(now + dt.timedelta(seconds=600), every=600) == {"imp": 0, "tok": 0, "rec": 0}


def test_the_click_path_prunes(any_redis):
    events = store_on(any_redis)
    any_redis.hincrby(KEYS.impressions("2026-11-28T20", 1, 0, 7), "7:100", 4)
    any_redis.zadd(KEYS.hours(0), {"2026-11-28T20": hour_end(at(20, 5))})
    client = app_for(events, Clock(at(23, 11)))
    click_id_of(client.simulate_get(f"/click/{SIGNER.sign(7, 100, int(at(23, 10).timestamp()), 'v')}"))
    assert not any_redis.exists(KEYS.impressions("2026-11-28T20", 1, 0, 7))
    assert any_redis.exists(KEYS.prune_lease)


# -- 5. served counts from what was recorded ---------------------------------------------------

def test_served_counts_come_from_the_recorded_impressions(any_redis):
    from banner_server.web.store import SelectionStore
    from tests.serving import STANDARD, publish_rows

    publish_rows(any_redis, STANDARD)
    served: dict[tuple[int, int, int], int] = {}
    for n, moment in enumerate((at(21, 5), at(22, 20), at(23, 50))):
        store = SelectionStore(any_redis, KEYS)  # a server restarted every hour: counts survive
        store.ensure_snapshot()
        for i in range(12):
            pick = store.pick(1, 7, f"c:v{i}", hour=hour_stamp(moment))
            if n:
                served[1, 7, pick.banner_id] = served.get((1, 7, pick.banner_id), 0) + 1
    events = store_on(any_redis)
    assert events.impressions_since(at(23, 55), hours=2) == served  # hours 22 and 23
    assert sum(events.impressions_since(at(23, 55), hours=24).values()) == 36


def test_a_token_digest_is_short_and_stable():
    assert token_digest("abc") == token_digest("abc") and len(token_digest("abc")) == 24


def test_a_tagged_token_names_its_visitor_without_revealing_it():
    served = int(at(23, 10).timestamp())
    now = served + 60
    tagged = SIGNER.sign(7, 100, served, "c:alice")
    assert SIGNER.verify(tagged, now) == (7, 100, served)
    assert SIGNER.verify_click(tagged, now, "c:alice") == (7, 100, served, False)
    assert SIGNER.verify_click(tagged, now, "c:bob")[3] is True
    assert SIGNER.verify_click(tagged, now, None)[3] is True  # no cookie: not the visitor it was shown to
    plain = SIGNER.sign(7, 100, served)
    assert SIGNER.verify_click(plain, now, "c:bob") == (7, 100, served, False)  # untagged: nothing to tell
    assert tagged != SIGNER.sign(7, 100, served, "c:bob") and "alice" not in tagged
    other = ClickSigner(b"o" * 32)
    assert other.visitor_tag("c:alice") != SIGNER.visitor_tag("c:alice")  # keyed
    from banner_server.web.tokens import BadToken
    for bad in (tagged[:-1] + ("A" if tagged[-1] != "A" else "B"), other.sign(7, 100, served, "c:alice")):
        with pytest.raises(BadToken):
            SIGNER.verify(bad, now)


def test_a_click_recorded_before_the_upgrade_still_takes_its_postback(any_redis):
    """Clicks were a key each (`{g}:click:{id}`, 30-day TTL) with ids from a counter:
    their postbacks keep working until those keys expire."""
    any_redis.set("banners:{g0.0}:click:12", "7 100 1700000000 1700000100", ex=CLICK_TTL)
    events = store_on(any_redis)
    assert events.click(12, tz=ZONE).campaign == 7
    assert events.record_conversion(12, 5, "3", at(23, 30)).outcome == "created"
    assert events.read_hour("2026-11-28T23").conversions == {2: [(5, 12, "3")]}  # the click's quarter (23:15 there)


def test_a_flood_on_a_cluster_evicts_visitors_only(redis_cluster):
    """The same flood on the cluster (3 masters, each capped): events spread over every
    master like the visitors, and none is evicted."""
    from banner_server.clients.detect import connect_client
    from banner_server.web.store import SelectionStore
    from tests.serving import STANDARD, publish_rows

    client = connect_client(redis_cluster.url, 5, 5)
    masters = [n for n in redis_cluster.nodes
               if n.alive and any("myself" in x["flags"] and "master" in x["flags"] for x in n.nodes())]
    assert len(masters) == 3
    saved = [(n.cmd("CONFIG", "GET", "maxmemory"), n.cmd("CONFIG", "GET", "maxmemory-policy")) for n in masters]
    try:
        publish_rows(client, STANDARD)
        store = SelectionStore(client, KEYS)
        store.ensure_snapshot()
        hour = hour_stamp(at(23, 10))
        events = EventStore(client, KEYS, keep_events=KEEP, rng=random.Random(2))
        served = int(at(23, 9).timestamp())
        clicks = [events.record_click(7, 100 + i % 3, served, at(23, 11, i), token=SIGNER.sign(7, 100, served, f"v{i}"))
                  for i in range(48)]
        for n, c in enumerate(clicks[:16]):
            assert events.record_conversion(c, 500 + n, "2", at(23, 12)).outcome == "created"
        before = events.read_hour(str(hour))
        for node in masters:
            used = int(node.cmd("INFO", "memory")["used_memory"])
            node.cmd("CONFIG", "SET", "maxmemory-policy", "volatile-lru")
            node.cmd("CONFIG", "SET", "maxmemory", used + 300_000)
        n = 0
        while events.evicted_keys() < 3 * 500:
            store.pick(1, 7, f"c:flood{n:022d}", hour=hour)
            n += 1
            assert n < 300_000, "no eviction"
        assert not store.degraded
        after = events.read_hour(str(hour))
        assert after.clicks == before.clicks and after.conversions == before.conversions
        assert all(events.click(c, tz=ZONE) is not None for c in clicks)
        assert events.record_conversion(clicks[0], 500, "2", at(23, 13)).outcome == "same"
    finally:
        for node, (memory, policy) in zip(masters, saved):
            node.cmd("CONFIG", "SET", *_config_pair(memory))
            node.cmd("CONFIG", "SET", *_config_pair(policy))
        client.close()


def _config_pair(reply) -> tuple:
    """CONFIG GET's reply (a dict or a flat list, by client) as (name, value)."""
    if isinstance(reply, dict):
        return next(iter(reply.items()))
    return reply[0], reply[1]


def test_readiness_probes_prune_the_fleets_old_events(real_redis):
    """Load balancers ask /readyz every few seconds: retention runs there (one worker
    per period, under the lease) even when nobody clicks."""
    from tests.serving import STANDARD, Clock, make_client, publish_rows

    publish_rows(real_redis, STANDARD)
    events = EventStore(real_redis, KEYS)
    old = dt.datetime(2026, 11, 20, 10, 5, tzinfo=dt.timezone.utc)
    store = events  # record a click 8 days ago: past --keep-events for its hour's counters
    store.record_click(7, 100, int(old.timestamp()) - 5, old, token="t-old")
    assert real_redis.zcard(KEYS.hours(0)) >= 1
    clock = Clock()
    client, _ = make_client(real_redis, clock, events=events, event_clock=clock, pinned=1)
    calls = []
    real = events.prune
    events.prune = lambda now: calls.append(now) or real(now)
    for _ in range(3):
        assert client.simulate_get("/readyz").status_code == 200
    assert len(calls) == 1  # once per period, whatever the probes
