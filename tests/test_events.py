"""Recording clicks and conversions (SPEC §7), and `banners export` of an hour of events.

EventStore on fakeredis and the real binary (any_redis), once on the real cluster;
GET /click/{token} and POST /conversions through falcon.testing on a small app of
their own; the export's bytes, its command, and the round trip export -> load.
"""

import datetime as dt
import json
import random
import re
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import falcon
import falcon.testing
import pytest
import redis
from click.testing import CliRunner

from banner_server import cli, config
from banner_server.cli import export as cli_export
from banner_server.layout.events import EventStore
from banner_server.layout.keys import Keys
from banner_server.web.html import error_serializer
from banner_server.web.tokens import ClickSigner
from banner_server.web.postbacks import ConversionResource, parse_revenue
from banner_server.web.tracking import ClickResource, with_click_id
from loader.export import hour_files, write_files
from loader.pipeline import compute

ZONE = ZoneInfo("Europe/Amsterdam")
KEYS = Keys()
SIGNER = ClickSigner(b"k" * 32)
TOKEN = "postback-token-0123456789"
KEEP = 7200


def at(hour: int, minute: int, second: int = 0, day: int = 28) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, second, tzinfo=ZONE)


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def store_on(client, keep=KEEP) -> EventStore:
    return EventStore(client, KEYS, keep_events=keep)


# -- EventStore ------------------------------------------------------------------------

def test_clicks_get_new_integer_ids_and_are_filed_in_their_hour_and_quarter(any_redis):
    events = store_on(any_redis)
    served = int(at(23, 10).timestamp())
    ids = [events.record_click(7, 100, served, at(23, 14, 59)), events.record_click(7, 101, served, at(23, 15, 0)),
           events.record_click(8, 100, served, at(0, 1, 0, day=29))]
    assert len(set(ids)) == 3 and all(0 < i < 2**63 for i in ids)
    assert [i >> 20 for i in ids] == [int(t.timestamp() * 1000) for t in (at(23, 14, 59), at(23, 15), at(0, 1, day=29))]
    clicked = int(at(23, 14, 59).timestamp())
    records = KEYS.clicks_by_hour("2026-11-28T23", 0)
    assert any_redis.hgetall(records) == {str(ids[0]).encode(): f"7 100 1 {served} {clicked} -".encode(),
                                          str(ids[1]).encode(): f"7 101 2 {served} {clicked + 1} -".encode()}
    assert any_redis.ttl(records) == -1  # never evicted under volatile-lru; prune removes it
    assert any_redis.hgetall(KEYS.clicks_by_hour("2026-11-29T00", 0)) == {
        str(ids[2]).encode(): f"8 100 1 {served} {int(at(0, 1, day=29).timestamp())} -".encode()}
    assert events.click(ids[1], tz=ZONE).campaign == 7 and events.click(ids[1], tz=ZONE).banner == 101
    assert events.click(ids[1] + 1, tz=ZONE) is None and events.click(99) is None


def test_conversions_are_recorded_once_conflicts_kept_and_unknown_clicks_refused(any_redis):
    events = store_on(any_redis)
    click = events.record_click(7, 100, 0, at(23, 20))
    now = at(23, 40)
    assert events.record_conversion(click, 50, "12.5", now).outcome == "created"
    assert events.record_conversion(click, 50, "12.5", now).outcome == "same"
    other = events.record_conversion(click, 50, "13", now)
    assert (other.outcome, other.recorded) == ("conflict", f"{click} 12.5")
    assert events.record_conversion(click + 1, 50, "12.5", now).outcome == "conflict"  # another click
    assert events.record_conversion(999, 51, "1", now).outcome == "unknown_click"
    # counted once, kept as first recorded, and the click's quarter (2) with it
    assert any_redis.hgetall(KEYS.conversions_by_hour("2026-11-28T23", 0)) == {b"50": f"{click} 12.5 2".encode()}
    assert any_redis.get(KEYS.conversion(51)) is None
    assert any_redis.ttl(KEYS.conversion(50)) == -1  # never evicted; pruned with its hour's index


def test_the_same_postback_again_after_its_click_expired_is_still_the_same(any_redis):
    events = store_on(any_redis)
    click = events.record_click(7, 100, 0, at(23, 20))
    assert events.record_conversion(click, 50, "2", at(23, 21)).outcome == "created"
    any_redis.hdel(KEYS.clicks_by_hour("2026-11-28T23", 0), str(click))  # 30 days later
    assert events.record_conversion(click, 50, "2", at(23, 22)).outcome == "same"
    assert events.record_conversion(click, 52, "2", at(23, 22)).outcome == "unknown_click"


def test_a_conversion_is_filed_in_its_clicks_quarter_and_the_hour_it_was_recorded(any_redis):
    events = store_on(any_redis)
    click = events.record_click(7, 100, 0, at(23, 50))  # quarter 4 of 23h
    assert events.record_conversion(click, 60, "3.25", at(0, 5, day=29)).outcome == "created"
    assert any_redis.hgetall(KEYS.conversions_by_hour("2026-11-29T00", 0)) == {b"60": f"{click} 3.25 4".encode()}
    assert not any_redis.exists(KEYS.conversions_by_hour("2026-11-28T23", 0))


def test_quarters_and_hours_are_the_servers_zone_even_off_the_hour(any_redis):
    """Kathmandu is UTC+05:45: 10:14 there is quarter 1, though 04:29 UTC is quarter 2."""
    kathmandu = ZoneInfo("Asia/Kathmandu")
    events = store_on(any_redis)
    when = dt.datetime(2026, 11, 28, 10, 14, tzinfo=kathmandu)
    click = events.record_click(7, 100, 0, when)
    assert any_redis.hget(KEYS.clicks_by_hour("2026-11-28T10", 0), str(click)).startswith(b"7 100 1 ")
    later = dt.datetime(2026, 11, 28, 11, 40, tzinfo=kathmandu)
    events.record_conversion(click, 1, "1", later)
    assert any_redis.hget(KEYS.conversions_by_hour("2026-11-28T11", 0), "1") == f"{click} 1 1".encode()


def test_two_postbacks_of_one_conversion_at_once_record_it_once(redis_proc, real_redis):
    click = store_on(real_redis).record_click(7, 100, 0, at(23, 20))
    outcomes, start = [], threading.Barrier(8)

    def post():
        events = store_on(redis_proc.client())
        start.wait()
        outcomes.append(events.record_conversion(click, 77, "5", at(23, 30)).outcome)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created"] + ["same"] * 7


def test_an_hour_is_read_back_over_every_group_and_twice_the_same(any_redis):
    any_redis.set(KEYS.groups_key, 4)
    keys = KEYS.with_groups(4)
    hour = "2026-11-28T23"
    any_redis.hincrby(keys.impressions(hour, 1, 0, 7), "7:100", 2)
    any_redis.hincrby(keys.impressions(hour, 1, 3, 7), "7:100", 3)
    any_redis.hincrby(keys.impressions(hour, 3, 2, 8), "8:200", 1)
    any_redis.hincrby(keys.impressions(hour, 3, 2, 25), "25:200", 4)  # another shard
    any_redis.hincrby(keys.impressions("2026-11-28T22", 1, 0, 9), "9:900", 1)  # another hour
    events = EventStore(any_redis, KEYS, keep_events=KEEP, rng=random.Random(9))
    clicks = [events.record_click(7, 100, 0, at(23, m)) for m in (1, 2, 3, 31)]
    assert {keys.id_group(c) for c in clicks} == {0, 1, 2, 3}  # spread over the groups (drawn at random)
    events.record_conversion(clicks[0], 5, "1.5", at(23, 59))
    got = events.read_hour(hour)
    assert {q: sorted(v) for q, v in got.impressions.items()} == {1: [(7, 100, 5)], 3: [(8, 200, 1), (25, 200, 4)]}
    assert {q: sorted(v) for q, v in got.clicks.items()} == {1: [(c, 100, 7) for c in clicks[:3]],
                                                             3: [(clicks[3], 100, 7)]}
    assert got.conversions == {1: [(5, clicks[0], "1.5")]}
    assert got.counts() == {1: (5, 3, 1), 3: (5, 1, 0)}
    assert events.read_hour(hour) == got  # a read: nothing removed


def test_what_the_pick_counts_is_what_the_export_reads(any_redis):
    """The server's pick script counts impressions; read_hour finds every one of them."""
    from banner_server.web.store import SelectionStore
    from tests.serving import STANDARD, publish_rows

    publish_rows(any_redis, STANDARD)
    store = SelectionStore(any_redis, KEYS)
    store.ensure_snapshot()
    served: dict[tuple[int, int, int], int] = {}
    for i in range(60):
        quarter, campaign = (1, 7) if i % 3 else (2, 9)
        pick = store.pick(quarter, campaign, f"c:visitor{i % 7}", hour="2026-11-28T23")
        served[quarter, campaign, pick.banner_id] = served.get((quarter, campaign, pick.banner_id), 0) + 1
    got = store_on(any_redis).read_hour("2026-11-28T23")
    assert {(q, c, b): n for q, rows in got.impressions.items() for c, b, n in rows} == served


def test_on_a_cluster_every_call_stays_in_one_slot(redis_cluster):
    """A call across slots would fail with CROSSSLOT; the ids spread over the masters."""
    from banner_server.clients.detect import connect_client

    client = connect_client(redis_cluster.url, 5, 5)
    events = EventStore(client, KEYS, keep_events=KEEP, rng=random.Random(1))
    keys = events.layout()
    assert keys.groups == 16  # the loader's choice on a cluster, before any load
    hour = "2026-11-28T23"
    for g in range(keys.groups):
        client.hincrby(keys.impressions(hour, 2, g, g), f"{g}:{100 + g}", 1)
    clicks = [events.record_click(7, 100 + i, 0, at(23, 20)) for i in range(32)]
    for n, c in enumerate(clicks):
        assert events.record_conversion(c, 1000 + n, "1", at(23, 25)).outcome == "created"
    assert events.record_conversion(clicks[0], 1000, "1", at(23, 26)).outcome == "same"
    masters = {redis_cluster.owner(client.keyslot(keys.clicks_by_hour(hour, keys.id_group(c)))).port for c in clicks}
    assert len(masters) == 3
    got = events.read_hour(hour)
    assert got.counts() == {2: (16, 32, 32)}
    assert events.read_hour(hour) == got
    assert events.prune(at(23, 0, day=29) + dt.timedelta(days=31))["rec"] == keys.groups  * 1
    assert events.read_hour(hour).empty and events.hour_ends() == {}
    client.close()


# -- GET /click/{token} ---------------------------------------------------------------

LANDINGS = {7: ("Winter sale", "https://shop.example/sale?utm=x&q=a%20b#top"),
            8: ("No page", None), 9: ("Old", "javascript:alert(1)"),
            10: ("Has one", "http://shop.example/?click_id=5&b=2")}


def landing(campaign):
    target = LANDINGS.get(campaign)
    if target is None or target[1] is None:
        return None if target is None else (target[0], None)
    return target


def tracking_app(events, clock, token=TOKEN, signer=SIGNER) -> falcon.testing.TestClient:
    app = falcon.App()
    app.set_error_serializer(error_serializer)
    app.add_route("/click/{token}", ClickResource(events, signer, landing, clock))
    app.add_route("/conversions", ConversionResource(events, token, clock))
    return falcon.testing.TestClient(app)


def click_token(campaign=7, banner=100, served=None, visitor=None):
    return SIGNER.sign(campaign, banner, int((served or at(23, 10)).timestamp()), visitor)


def location_click_id(res) -> int:
    return int(re.search(r"[?&]click_id=(\d+)", res.headers["Location"]).group(1))


def test_a_click_is_recorded_and_redirected_to_the_landing_page_with_its_click_id(any_redis):
    client = tracking_app(store_on(any_redis), Clock(at(23, 11)))
    res = client.simulate_get(f"/click/{click_token()}")
    assert res.status_code == 302
    first = location_click_id(res)
    assert res.headers["Location"] == f"https://shop.example/sale?utm=x&q=a%20b&click_id={first}#top"
    assert res.headers["Cache-Control"] == "no-store" and res.headers["Referrer-Policy"] == "no-referrer"
    assert any_redis.hget(KEYS.clicks_by_hour("2026-11-28T23", 0), str(first)).startswith(b"7 100 1 ")
    res = client.simulate_get(f"/click/{click_token(banner=101)}")
    assert location_click_id(res) != first


def test_a_landing_page_that_has_a_click_id_gets_ours_instead(any_redis):
    res = tracking_app(store_on(any_redis), Clock(at(23, 11))).simulate_get(f"/click/{click_token(10)}")
    assert res.headers["Location"] == f"http://shop.example/?b=2&click_id={location_click_id(res)}"


def test_the_redirect_never_comes_from_the_request(any_redis):
    client = tracking_app(store_on(any_redis), Clock(at(23, 11)))
    res = client.simulate_get(f"/click/{click_token()}", query_string="url=https://evil.example/&landing=x",
                              headers={"Referer": "https://evil.example/"})
    assert res.headers["Location"].startswith("https://shop.example/sale?")


@pytest.mark.parametrize("campaign", [8, 9, 11])
def test_without_a_landing_page_the_click_is_recorded_and_a_page_says_so(any_redis, campaign):
    res = tracking_app(store_on(any_redis), Clock(at(23, 11))).simulate_get(f"/click/{click_token(campaign)}")
    assert res.status_code == 200 and "Location" not in res.headers
    click_id = int(re.search(r"click (\d+)", res.text).group(1))
    assert "no landing page" in res.text and "Your click was recorded" in res.text
    assert res.headers["Cache-Control"] == "no-store" and res.headers["Referrer-Policy"] == "no-referrer"
    assert store_on(any_redis).click(click_id, tz=ZONE).campaign == campaign


def test_forged_altered_or_junk_click_tokens_are_400_and_record_nothing(any_redis):
    client = tracking_app(store_on(any_redis), Clock(at(23, 11)))
    good = click_token()
    forged = ClickSigner(b"x" * 32).sign(7, 100, int(at(23, 10).timestamp()))
    altered = good[:5] + ("A" if good[5] != "A" else "B") + good[6:]
    for token in (forged, altered, "junk", "a" * 200, good + "x"):
        res = client.simulate_get(f"/click/{token}")
        assert res.status_code == 400, token
        assert "not made by this service" in res.text and res.headers["Cache-Control"] == "no-store"
    res = client.simulate_get(f"/click/{forged}", headers={"Accept": "application/json"})
    assert res.json["error"] == "Bad click link"
    assert not any_redis.keys("*clicks:*")


def test_a_click_link_older_than_a_day_is_410(any_redis):
    clock = Clock(at(23, 10, day=29) + dt.timedelta(seconds=1))
    res = tracking_app(store_on(any_redis), clock).simulate_get(f"/click/{click_token(served=at(23, 10))}")
    assert res.status_code == 410 and "24 hours" in res.text
    assert not any_redis.keys("*clicks:*")
    clock.now -= dt.timedelta(seconds=2)
    assert tracking_app(store_on(any_redis), clock).simulate_get(f"/click/{click_token()}").status_code == 302


def test_head_checks_the_link_and_records_nothing(any_redis):
    client = tracking_app(store_on(any_redis), Clock(at(23, 11)))
    res = client.simulate_head(f"/click/{click_token()}")
    assert res.status_code == 302 and "click_id" not in res.headers["Location"]
    assert client.simulate_head("/click/junk").status_code == 400
    assert not any_redis.keys("*clicks:*")


def test_a_click_while_redis_is_down_still_sends_the_visitor_on(tmp_path):
    dead = redis.Redis(unix_socket_path=str(tmp_path / "nothing.sock"), socket_timeout=0.2)
    client = tracking_app(store_on(dead), Clock(at(23, 11)))
    res = client.simulate_get(f"/click/{click_token()}")
    assert res.status_code == 302 and res.headers["Location"] == "https://shop.example/sale?utm=x&q=a%20b#top"
    res = client.simulate_get(f"/click/{click_token(8)}")
    assert res.status_code == 200 and "not recorded" in res.text


@pytest.mark.parametrize("url, want", [
    ("https://a.example/p", "https://a.example/p?click_id=3"),
    ("https://a.example/p?", "https://a.example/p?click_id=3"),
    ("https://a.example/p?x=1&&y=%26#f", "https://a.example/p?x=1&y=%26&click_id=3#f"),
    ("https://a.example/p?Click_ID=1&click%5Fid=2", "https://a.example/p?Click_ID=1&click_id=3"),
    ("https://bücher.example/ä ö?q=\"<x>\"", "https://xn--bcher-kva.example/%C3%A4%20%C3%B6?q=%22%3Cx%3E%22&click_id=3"),
    ("https://a.example/p\r\nSet-Cookie: x=1", "https://a.example/pSet-Cookie:%20x=1?click_id=3"),
])
def test_the_click_id_is_added_to_the_landing_query_and_the_url_is_header_safe(url, want):
    assert with_click_id(url, 3) == want


# -- POST /conversions ------------------------------------------------------------------

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def post(client, body, content_type="application/json", headers=AUTH):
    data = json.dumps(body) if isinstance(body, (dict, list)) else body
    return client.simulate_post("/conversions", body=data, headers={**headers, "Content-Type": content_type})


@pytest.fixture
def clicked(any_redis):
    """(test client, redis, a click id recorded at 23:20)."""
    events = store_on(any_redis)
    click = events.record_click(7, 100, 0, at(23, 20))
    return tracking_app(events, Clock(at(23, 40))), any_redis, click


def test_a_postback_is_201_then_200_and_counted_once(clicked):
    client, r, click = clicked
    res = post(client, {"click_id": click, "conversion_id": 9, "revenue": 12.50})
    assert res.status_code == 201, res.text
    assert res.json == {"status": "created", "conversion_id": 9, "click_id": click, "revenue": "12.5"}
    res = post(client, {"click_id": str(click), "conversion_id": "9", "revenue": "12.50"})
    assert res.status_code == 200 and res.json["status"] == "already_recorded"
    res = post(client, f"click_id={click}&conversion_id=9&revenue=12.5", "application/x-www-form-urlencoded")
    assert res.status_code == 200
    assert r.hgetall(KEYS.conversions_by_hour("2026-11-28T23", 0)) == {b"9": f"{click} 12.5 2".encode()}
    assert res.headers["Cache-Control"] == "no-store"


def test_a_form_postback_is_201(clicked):
    client, r, click = clicked
    res = post(client, f"click_id={click}&conversion_id=10&revenue=0&source=net", "application/x-www-form-urlencoded")
    assert res.status_code == 201 and res.json["revenue"] == "0"


def test_the_same_conversion_id_with_other_values_is_409_and_kept(clicked):
    client, r, click = clicked
    assert post(client, {"click_id": click, "conversion_id": 9, "revenue": 1}).status_code == 201
    res = post(client, {"click_id": click, "conversion_id": 9, "revenue": 2})
    assert res.status_code == 409 and f"click {click} and revenue 1" in res.json["detail"]
    assert r.get(KEYS.conversion(9)) == f"{click} 1".encode()


def test_a_postback_for_an_unknown_or_expired_click_is_404(clicked):
    client, r, click = clicked
    assert post(client, {"click_id": click + 1, "conversion_id": 9, "revenue": 1}).status_code == 404
    r.hdel(KEYS.clicks_by_hour("2026-11-28T23", 0), str(click))  # what pruning after 30 days does
    res = post(client, {"click_id": click, "conversion_id": 9, "revenue": 1})
    assert res.status_code == 404 and "30 days" in res.json["detail"]
    assert not r.exists(KEYS.conversion(9))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"}])
def test_no_or_a_wrong_token_is_401(clicked, headers):
    client, r, click = clicked
    res = post(client, {"click_id": click, "conversion_id": 9, "revenue": 1}, headers=headers)
    assert res.status_code == 401 and res.headers["WWW-Authenticate"].startswith("Bearer")
    assert not r.exists(KEYS.conversion(9))


def test_the_token_scheme_is_case_insensitive(clicked):
    client, _, click = clicked
    res = post(client, {"click_id": click, "conversion_id": 9, "revenue": 1},
               headers={"Authorization": f"bearer  {TOKEN}"})
    assert res.status_code == 201


def test_without_a_configured_token_postbacks_are_503(any_redis):
    client = tracking_app(store_on(any_redis), Clock(at(23, 40)), token=None)
    res = post(client, {"click_id": 1, "conversion_id": 9, "revenue": 1})
    assert res.status_code == 503 and "BANNERS_POSTBACK_TOKEN" in res.json["detail"]


@pytest.mark.parametrize("body, content_type, says", [
    ({"conversion_id": 9, "revenue": 1}, "application/json", "missing click_id"),
    ({"click_id": 1, "conversion_id": 9, "revenue": -1}, "application/json", "negative"),
    ('{"click_id": 1, "conversion_id": 9, "revenue": NaN}', "application/json", "finite"),
    ('{"click_id": 1, "conversion_id": 9, "revenue": Infinity}', "application/json", "finite"),
    ('{"click_id": 1, "conversion_id": 9, "revenue": 1e400}', "application/json", "below"),
    ({"click_id": 1, "conversion_id": 9, "revenue": "1,5"}, "application/json", "decimal number"),
    ({"click_id": 1, "conversion_id": 9, "revenue": "1e3"}, "application/json", "decimal number"),
    ({"click_id": 1, "conversion_id": 9, "revenue": True}, "application/json", "decimal number"),
    ({"click_id": 1, "conversion_id": 9, "revenue": None}, "application/json", "decimal number"),
    ({"click_id": 1, "conversion_id": 9, "revenue": 0.0000000001}, "application/json", "decimals"),
    ({"click_id": 2**63, "conversion_id": 9, "revenue": 1}, "application/json", "click_id must be"),
    ({"click_id": -1, "conversion_id": 9, "revenue": 1}, "application/json", "click_id must be"),
    ({"click_id": 1.5, "conversion_id": 9, "revenue": 1}, "application/json", "click_id must be"),
    ({"click_id": True, "conversion_id": 9, "revenue": 1}, "application/json", "click_id must be"),
    ({"click_id": 1, "conversion_id": "９", "revenue": 1}, "application/json", "conversion_id must be"),
    ([1, 2, 3], "application/json", "object"),
    ('{"click_id": 1,', "application/json", "not valid JSON"),
    ("click_id=1&click_id=2&conversion_id=9&revenue=1", "application/x-www-form-urlencoded", "2 times"),
    ("click_id=1&conversion_id=9&revenue=", "application/x-www-form-urlencoded", "decimal number"),
    ("click_id=1&conversion_id=9", "application/x-www-form-urlencoded", "missing revenue"),
    (b"click_id=\xff", "application/x-www-form-urlencoded", "UTF-8"),
])
def test_a_malformed_postback_is_400_saying_why(clicked, body, content_type, says):
    client, r, _ = clicked
    res = post(client, body, content_type)
    assert res.status_code == 400, res.text
    assert says in res.json["detail"], res.json
    assert not r.exists(KEYS.conversion(9))


def test_a_body_over_4_kib_is_413_and_other_types_415(clicked):
    client, _, click = clicked
    big = json.dumps({"click_id": click, "conversion_id": 9, "revenue": 1, "pad": "x" * 5000})
    assert post(client, big).status_code == 413
    assert post(client, "click_id=1", "text/plain").status_code == 415


def test_a_postback_without_a_content_type_is_read_as_what_it_looks_like(clicked):
    client, _, click = clicked
    res = client.simulate_post("/conversions", body=json.dumps({"click_id": click, "conversion_id": 9, "revenue": 1}),
                               headers=AUTH)
    assert res.status_code == 201


def test_a_postback_while_redis_is_down_is_503_with_retry_after(tmp_path):
    dead = redis.Redis(unix_socket_path=str(tmp_path / "nothing.sock"), socket_timeout=0.2)
    client = tracking_app(store_on(dead), Clock(at(23, 40)))
    res = post(client, {"click_id": 1, "conversion_id": 9, "revenue": 1})
    assert res.status_code == 503 and res.headers["Retry-After"] == "5"


@pytest.mark.parametrize("given, canonical", [
    (1, "1"), ("12.50", "12.5"), ("0.000", "0"), ("007", "7"), ("999999999999.123456789", "999999999999.123456789")])
def test_revenue_has_one_canonical_text(given, canonical):
    assert parse_revenue(given) == canonical


# -- settings ----------------------------------------------------------------------------

def test_keep_events_and_the_postback_token_are_settings():
    s = config.Settings.from_env({"BANNERS_KEEP_EVENTS": "7200", "BANNERS_POSTBACK_TOKEN": TOKEN})
    assert (s.keep_events, s.postback_token) == (7200, TOKEN)
    s = config.Settings.from_env({})
    assert (s.keep_events, s.postback_token) == (172800, None)
    for name, value in [("BANNERS_KEEP_EVENTS", "60"), ("BANNERS_KEEP_EVENTS", "2d"),
                        ("BANNERS_POSTBACK_TOKEN", "short"), ("BANNERS_POSTBACK_TOKEN", "has a space in it ok")]:
        with pytest.raises(config.SettingError, match=name):
            config.Settings.from_env({name: value})


# -- export ----------------------------------------------------------------------------

def test_hour_files_are_sorted_with_one_row_per_impression_and_no_empty_files():
    files = hour_files("2026-11-28T23",
                       {1: [(8, 200, 1), (7, 101, 2), (7, 100, 1)], 2: [(7, 100, 0)]},
                       {1: [(5, 100, 7), (2, 101, 7)]},
                       {3: [(11, 4, "2.5"), (10, 3, "0")]})
    assert files == {
        "1/impressions_2026-11-28T23.csv": b"banner_id,campaign_id\n100,7\n101,7\n101,7\n200,8\n",
        "1/clicks_2026-11-28T23.csv": b"click_id,banner_id,campaign_id\n2,101,7\n5,100,7\n",
        "3/conversions_2026-11-28T23.csv": b"conversion_id,click_id,revenue\n10,3,0\n11,4,2.5\n",
    }


def test_the_same_events_in_any_order_give_the_same_bytes():
    rng = random.Random(5)
    imps = [(c, b, rng.randint(1, 4)) for c in range(3) for b in range(100, 140)]
    clicks = [(i, 100 + i % 7, i % 3) for i in range(300)]
    convs = [(i, i * 3, f"{i}.25") for i in range(50)]
    first = hour_files("h", {2: imps}, {2: clicks}, {2: convs})
    for _ in range(3):
        rng.shuffle(imps), rng.shuffle(clicks), rng.shuffle(convs)
        assert hour_files("h", {2: imps}, {2: clicks}, {2: convs}) == first


def test_files_are_written_whole_and_leave_no_temporary_file(tmp_path):
    written = write_files(tmp_path, {"1/clicks_h.csv": b"a\n", "4/conversions_h.csv": b"b\n"})
    assert [p.read_bytes() for p in written] == [b"a\n", b"b\n"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "1/clicks_h.csv", "4/conversions_h.csv"]


def record_traffic(r) -> int:
    """Hours 22 and 23 of 2026-11-28: campaign 7 in quarter 1 with conversions (one of
    them posted back in the next hour), campaign 8 in quarter 3 with clicks only, and a
    click in quarter 4 of 22h converted at 23h."""
    events = store_on(r)
    keys = events.layout()
    for q, campaign, banners in ((1, 7, range(100, 106)), (3, 8, range(200, 203)), (4, 9, (900,))):
        for b in banners:
            r.hincrby(keys.impressions("2026-11-28T23", q, keys.group_of(f"v{b}"), campaign), f"{campaign}:{b}", 3)
    c101 = [events.record_click(7, 101, 0, at(23, m)) for m in (1, 2, 3)]
    c102 = [events.record_click(7, 102, 0, at(23, m)) for m in (4, 5)]
    events.record_click(7, 103, 0, at(23, 6))
    for b, n in ((200, 1), (201, 3), (202, 2)):
        for _ in range(n):
            events.record_click(8, b, 0, at(23, 31))
    late = events.record_click(9, 900, 0, at(22, 50))  # quarter 4 of 22h
    assert events.record_conversion(c101[0], 1, "5", at(23, 10)).outcome == "created"
    assert events.record_conversion(c102[0], 2, "9.5", at(23, 12)).outcome == "created"
    assert events.record_conversion(late, 3, "4", at(23, 20)).outcome == "created"
    assert events.record_conversion(c101[1], 4, "0.25", at(0, 3, day=29)).outcome == "created"
    return late


def check_selections(out: Path) -> None:
    result = compute(out, seed=3)
    assert result.rejects.height == 0, result.rejects.to_dicts()
    sel = result.selections.sort("quarter", "campaign_id", "rank")
    by = {(q, c): df for (q, c), df in sel.group_by("quarter", "campaign_id", maintain_order=True)}
    q1 = by[1, 7]
    assert q1["banner_id"].to_list()[:3] == [102, 101, 103]  # 9.5, 5.25, then by clicks
    assert q1["revenue"].to_list()[:2] == [9.5, 5.25] and q1["scenario"][0] == "revenue_then_clicks"
    assert set(q1["banner_id"]) <= set(range(100, 106)) and q1.height == 5
    assert by[3, 8]["banner_id"].to_list() == [201, 202, 200] and by[3, 8]["scenario"][0] == "top_clicks"
    assert by[4, 9]["banner_id"].to_list() == [900] and by[4, 9]["revenue"].to_list() == [4.0]


def test_export_then_load_selects_from_what_was_recorded(any_redis, tmp_path):
    late = record_traffic(any_redis)
    events = store_on(any_redis)
    for hour in ("2026-11-28T22", "2026-11-28T23", "2026-11-29T00"):
        got = events.read_hour(hour)
        write_files(tmp_path, hour_files(hour, got.impressions, got.clicks, got.conversions))
    assert (tmp_path / "4" / "conversions_2026-11-28T23.csv").read_text() == (
        f"conversion_id,click_id,revenue\n3,{late},4\n")
    check_selections(tmp_path)


@pytest.fixture
def export(redis_proc, monkeypatch):
    """runs `banners export` against the real binary at a given local time."""
    def run(now: dt.datetime, *args):
        monkeypatch.setattr(cli_export, "_clock", lambda tz: (lambda: now))
        return CliRunner().invoke(cli.main, ["export", *args, "--redis-url", redis_proc.url], catch_exceptions=False)

    return run


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_export_command_round_trip_to_load(export, real_redis, tmp_path):
    record_traffic(real_redis)
    out = tmp_path / "out"
    res = export(at(0, 5, day=29), str(out))  # default: the last closed hour, 23h
    assert res.exit_code == 0, res.output
    assert "quarter 1: 18 impressions, 6 clicks, 2 conversions" in res.output
    for hour in ("2026-11-28T22", "2026-11-29T00"):
        assert export(at(1, 5, day=29), str(out), "--hour", hour).exit_code == 0
    check_selections(out)


def test_exporting_an_hour_twice_gives_the_same_bytes_and_a_pruned_hour_overwrites_nothing(export, real_redis,
                                                                                           tmp_path):
    """Export is a read (issue 19): the second export of an hour finds everything the
    first did, byte for byte; only retention (prune) removes an hour."""
    record_traffic(real_redis)
    a, b = tmp_path / "a", tmp_path / "b"
    assert export(at(0, 5, day=29), str(a)).exit_code == 0
    assert export(at(0, 6, day=29), str(b)).exit_code == 0
    assert tree(a) == tree(b) and len(tree(a)) == 7
    assert real_redis.hlen(KEYS.clicks_by_hour("2026-11-28T23", 0)) == 12  # nothing removed
    stamp = {p: p.stat().st_mtime_ns for p in a.rglob("*.csv")}
    store_on(real_redis).prune(at(0, 5, day=29) + dt.timedelta(days=31))
    res = export(at(0, 8, day=29), str(a))
    assert res.exit_code == 0 and "nothing recorded" in res.output
    assert tree(a) == tree(b) and stamp == {p: p.stat().st_mtime_ns for p in a.rglob("*.csv")}


def test_an_hour_that_just_ended_is_not_the_default_yet_and_nothing_is_removed(export, real_redis, tmp_path):
    """A minute's grace after an hour's recorded end (a late request may still count):
    the default is the hour before; export is a read either way (issue 19)."""
    record_traffic(real_redis)
    res = export(at(0, 0, 30, day=29), str(tmp_path))
    assert res.exit_code == 0 and "for hour 2026-11-28T22" in res.output
    assert real_redis.exists(KEYS.clicks_by_hour("2026-11-28T23", 0))
    assert real_redis.exists(KEYS.clicks_by_hour("2026-11-28T22", 0))


@pytest.mark.parametrize("hour, code, says", [
    ("2026-11-29T00", 2, "still being recorded"),   # the running hour, as the servers recorded it
    ("2026-11-30T05", 0, "nothing recorded"),       # nothing recorded in it (yet)
    ("2026-11-28 23", 2, "not an hour"), ("2026-11-28T24", 2, "not an hour"), ("yesterday", 2, "not an hour")])
def test_the_running_a_future_or_a_malformed_hour(export, real_redis, tmp_path, hour, code, says):
    record_traffic(real_redis)
    res = export(at(0, 5, day=29), str(tmp_path), "--hour", hour)
    assert res.exit_code == code and says in res.output and "Traceback" not in res.output


def test_the_running_hour_only_with_its_own_flag_and_said_to_be_partial(export, real_redis, tmp_path):
    record_traffic(real_redis)
    res = export(at(0, 5, day=29), str(tmp_path), "--hour", "2026-11-29T00", "--running-hour-partial")
    assert res.exit_code == 0 and "still being recorded" in res.output and "so far" in res.output


def test_which_hours_are_over_is_the_servers_recorded_hour_whatever_the_callers_tz(export, real_redis, tmp_path):
    """The servers record in UTC; a caller in Kathmandu (UTC+5:45) neither gets the
    running hour by default nor may name it (issue 19: it exported the running hour)."""
    record_traffic(real_redis)
    kathmandu = at(0, 5, day=29).astimezone(ZoneInfo("Asia/Kathmandu"))  # 05:50 there
    res = export(kathmandu, str(tmp_path), "--tz", "Asia/Kathmandu")
    assert res.exit_code == 0 and "for hour 2026-11-28T23" in res.output
    res = export(kathmandu, str(tmp_path), "--hour", "2026-11-29T00", "--tz", "Asia/Kathmandu")
    assert res.exit_code == 2 and "still being recorded" in res.output


def test_export_with_redis_unreachable_exits_1(monkeypatch, tmp_path):
    monkeypatch.setattr(cli_export, "_clock", lambda tz: (lambda: at(0, 5, day=29)))
    res = CliRunner().invoke(cli.main, ["export", str(tmp_path / "out"), "--redis-url",
                                        f"unix://{tmp_path}/none.sock"])
    assert res.exit_code == 1 and "cannot reach Redis" in res.output
    assert not (tmp_path / "out").exists()
