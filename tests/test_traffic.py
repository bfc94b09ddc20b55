"""Issue 20: traffic quality wired into the request and click paths, and frequency caps
in the pick's one atomic call.

Invalid impressions (a crawler, a prefetch, HEAD) and clicks (no impression, a replay,
a burst, ...) are answered like valid ones, counted apart by reason, kept out of the
export (with --invalid DIR written apart for audit); a visitor capped at N per window
gets N banners, then the capped answer (204 / an empty placement), and banners again
after the window: all on the injected clock."""

import datetime as dt
import json
import re
import threading
from collections import Counter

import falcon.testing
import pytest
from click.testing import CliRunner

from banner_server import cli
from banner_server.clock import Hour, quarter_of
from banner_server.config import Settings, SettingError, FREQUENCY_CAP
from banner_server.layout.events import EventStore
from banner_server.web.app import create_app
from banner_server.web.images import ImageDir
from banner_server.web.metrics import Metrics
from banner_server.web.quality import Classifier
from banner_server.web.services import Services
from banner_server.web.store import SelectionStore
from banner_server.web.tokens import ClickSigner
from banner_server.web.auth import AdminAuth
from tests.serving import ADMIN, ADMIN_TOKEN, KEYS, STANDARD, publish_rows

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 28, 10, 5, tzinfo=UTC)  # quarter 1
HOUR = "2026-11-28T10"
HOUR_END = int(dt.datetime(2026, 11, 28, 11, tzinfo=UTC).timestamp())
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
OTHER_BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
JSON = {"Accept": "application/json"}
SIGNER = ClickSigner(b"k" * 32)


class Clock:
    """The injected clock: what events are recorded at and what banners are signed with."""

    def __init__(self):
        self.at = START

    def __call__(self) -> dt.datetime:
        return self.at

    def ts(self) -> float:
        return self.at.timestamp()

    def advance(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


def serve(redis_client, clock: Clock, *, classify=True, cap=None, max_clicks=10, fast=None):
    """(falcon test client, store, events, metrics) over a store on `redis_client`."""
    store = SelectionStore(redis_client, KEYS, frequency_cap=cap, now=clock.ts, fast=fast)
    events = EventStore(redis_client, KEYS)
    metrics = Metrics()
    services = Services(store, lambda: quarter_of(clock()), images=ImageDir(None), metrics=metrics,
                        signer=SIGNER, now=clock.ts, hour=lambda: Hour(HOUR, HOUR_END), events=events,
                        clock=clock, admin=AdminAuth(ADMIN_TOKEN),
                        classifier=Classifier(enabled=classify, max_clicks_per_minute=max_clicks))
    return falcon.testing.TestClient(create_app(Settings(), services)), store, events, metrics


def published(redis_client, campaigns='{"7": ["Seven", "https://shop.example/"]}'):
    publish_rows(redis_client, STANDARD)
    redis_client.set(KEYS.campaign_info(redis_client.get(KEYS.current).decode()), campaigns)


def shown(client, visitor="v" * 22, ua=BROWSER, **headers):
    res = client.simulate_get("/campaigns/7", headers={**JSON, "User-Agent": ua,
                                                       "Cookie": f"visitor_id={visitor}", **headers})
    assert res.status_code == 200, res.text
    return res.json


def click(client, url, visitor="v" * 22, ua=BROWSER):
    res = client.simulate_get(url, headers={"User-Agent": ua, "Cookie": f"visitor_id={visitor}"})
    assert res.status_code == 302  # valid or not, the visitor is sent on
    return int(re.search(r"click_id=(\d+)", res.headers["Location"]).group(1))


def metric_lines(client, name):
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in client.simulate_get("/metrics", headers=ADMIN).text.splitlines()
            if line.startswith(name + "{")}


# -- impressions --------------------------------------------------------------------------------

def test_bot_prefetch_and_head_impressions_are_answered_but_counted_apart(any_redis):
    published(any_redis)
    clock = Clock()
    client, _, events, _ = serve(any_redis, clock)
    shown(client)  # a browser: valid
    bot = shown(client, "b" * 22, GOOGLEBOT)
    assert bot["banner_id"] in (101, 200, 300, 400, 500) and bot["click_url"]  # a normal answer
    shown(client, "p" * 22, BROWSER, **{"Sec-Purpose": "prefetch;prerender"})
    head = client.simulate_head("/campaigns/7", headers={**JSON, "User-Agent": BROWSER,
                                                        "Cookie": "visitor_id=" + "h" * 22})
    assert head.status_code == 200

    recorded = events.read_hour(HOUR)
    assert sum(n for _, _, n in recorded.impressions[1]) == 1  # only the browser's
    invalid = Counter()
    for campaign, _, reason, n in recorded.invalid_impressions[1]:
        invalid[campaign, reason] += n
    assert invalid == {(7, "bot"): 1, (7, "prefetch"): 1, (7, "head"): 1}
    assert events.invalid_counts(clock())["impressions"] == {(7, "bot"): 1, (7, "prefetch"): 1, (7, "head"): 1}
    lines = metric_lines(client, "banners_impressions_total")
    assert lines['banners_impressions_total{quality="valid"}'] == 1
    assert lines['banners_impressions_total{quality="invalid",reason="bot"}'] == 1
    assert lines['banners_impressions_total{quality="invalid",reason="head"}'] == 1


def test_invalid_traffic_still_follows_no_repeat(real_redis):
    published(real_redis)
    client, _, _, _ = serve(real_redis, Clock())
    seen = [shown(client, "b" * 22, GOOGLEBOT)["banner_id"] for _ in range(30)]
    assert all(a != b for a, b in zip(seen, seen[1:]))


def test_classification_off_counts_every_answer_as_before(real_redis):
    published(real_redis)
    client, _, events, _ = serve(real_redis, Clock(), classify=False)
    shown(client, ua=GOOGLEBOT)
    assert events.read_hour(HOUR).impressions[1][0][2] == 1 and not events.read_hour(HOUR).invalid_impressions


def test_export_writes_valid_events_only_and_invalid_ones_apart(real_redis, redis_proc, tmp_path):
    published(real_redis)
    clock = Clock()
    client, _, _, _ = serve(real_redis, clock)
    shown(client)
    shown(client, "b" * 22, GOOGLEBOT)
    url = shown(client)["click_url"]
    clock.advance(5)
    click(client, url)  # valid
    bot_url = shown(client, "b" * 22, GOOGLEBOT)["click_url"]
    clock.advance(5)
    click(client, bot_url, "b" * 22, GOOGLEBOT)  # bot

    out, audit = tmp_path / "out", tmp_path / "audit"
    res = CliRunner().invoke(cli.main, ["export", str(out), "--hour", HOUR, "--invalid", str(audit),
                                        "--redis-url", redis_proc.url, "--state-dir", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "left out as invalid traffic: 2 impressions, 1 click" in res.output
    imps = (out / "1" / f"impressions_{HOUR}.csv").read_text().splitlines()
    assert imps[0] == "banner_id,campaign_id" and len(imps) == 1 + 2  # the browser's two
    assert len((out / "1" / f"clicks_{HOUR}.csv").read_text().splitlines()) == 1 + 1
    bad = (audit / "1" / f"impressions_{HOUR}.csv").read_text().splitlines()
    assert bad[0] == "banner_id,campaign_id,reason" and [r.split(",")[2] for r in bad[1:]] == ["bot", "bot"]
    bad_clicks = (audit / "1" / f"clicks_{HOUR}.csv").read_text().splitlines()
    assert bad_clicks[0] == "click_id,banner_id,campaign_id,reason" and bad_clicks[1].endswith(",bot")


# -- clicks -------------------------------------------------------------------------------------

def test_click_reasons_no_impression_replay_too_fast_and_burst(real_redis):
    published(real_redis)
    clock = Clock()
    client, _, events, metrics = serve(real_redis, clock, max_clicks=3)
    url = shown(client)["click_url"]
    clock.advance(5)
    valid = click(client, url)
    assert events.click(valid, tz=UTC).reason is None

    # a click URL no banner answer made for anyone (signed without a visitor)
    forged = "/click/" + SIGNER.sign(7, 200, int(clock.ts()) - 5)
    assert events.click(click(client, forged), tz=UTC).reason == "no_impression"
    # the same click URL again: the same click id, nothing new recorded, counted as a replay
    assert click(client, url) == valid
    # sooner than BANNERS_MIN_CLICK_DELAY after the impression
    fast = shown(client)["click_url"]
    assert events.click(click(client, fast), tz=UTC).reason == "too_fast"
    # a burst: more than 3 clicks of the visitor in the minute (the valid and the too_fast
    # ones count: 2 already; a click URL is one per visitor, banner and second)
    urls = []
    for _ in range(3):
        clock.advance(1)
        urls.append(shown(client)["click_url"])
    clock.advance(2)
    reasons = [events.click(click(client, u), tz=UTC).reason for u in urls]
    assert reasons == [None, "click_rate", "click_rate"]
    # another visitor's click URL
    theirs = shown(client, "w" * 22)["click_url"]
    clock.advance(2)
    assert events.click(click(client, theirs), tz=UTC).reason == "other_visitor"

    recorded = events.read_hour(HOUR)
    assert len(recorded.clicks[1]) == 2 and valid in [c for c, _, _ in recorded.clicks[1]]  # the valid ones
    assert Counter(r for *_, r in recorded.invalid_clicks[1]) == {
        "no_impression": 1, "too_fast": 1, "click_rate": 2, "other_visitor": 1}
    counts = events.invalid_counts(clock())["clicks"]
    assert counts[7, "replay"] == 1 and counts[7, "click_rate"] == 2
    lines = metric_lines(client, "banners_clicks_total")
    assert lines['banners_clicks_total{quality="valid"}'] == 2
    assert lines['banners_clicks_total{quality="invalid",reason="replay"}'] == 1


def test_the_click_rate_window_is_the_injected_clock_minute(real_redis):
    published(real_redis)
    clock = Clock()
    client, _, events, _ = serve(real_redis, clock, max_clicks=1)
    first, second = shown(client)["click_url"], shown(client)["click_url"]
    clock.advance(5)
    assert events.click(click(client, first), tz=UTC).reason is None
    clock.advance(60)  # the next minute: a new counter
    assert events.click(click(client, second), tz=UTC).reason is None


def test_a_conversion_of_an_invalid_click_is_not_exported_as_valid(real_redis):
    published(real_redis)
    clock = Clock()
    _, _, events, _ = serve(real_redis, clock)
    bad = events.record_click(7, 200, int(clock.ts()), clock(), request_reason="bot", classified=True)
    events.record_conversion(bad.click_id, 5, "3.5", clock())
    recorded = events.read_hour(HOUR)
    assert not recorded.conversions and recorded.invalid_conversions[1] == [(5, bad.click_id, "3.5", "bot")]


# -- frequency caps -----------------------------------------------------------------------------

def test_a_capped_visitor_gets_three_banners_then_the_capped_answer_then_banners_after_the_window(any_redis):
    published(any_redis)
    clock = Clock()
    clock.at = dt.datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # the window's start (3600 divides the hour)
    client, _, events, _ = serve(any_redis, clock, cap=(3, 3600))
    headers = {"User-Agent": BROWSER, "Cookie": "visitor_id=" + "c" * 22}
    seen = [shown(client, "c" * 22)["banner_id"] for _ in range(3)]
    assert all(a != b for a, b in zip(seen, seen[1:]))
    capped = client.simulate_get("/campaigns/7", headers={**headers, **JSON})
    assert capped.status_code == 204 and not capped.text and "set-cookie" not in capped.headers
    page = client.simulate_get("/campaigns/7", headers=headers)
    assert page.status_code == 200 and "<img" not in page.text and "/click/" not in page.text
    frame = client.simulate_get("/campaigns/7/embed", headers=headers)
    assert frame.status_code == 200 and "<img" not in frame.text
    assert shown(client, "d" * 22)["banner_id"]  # another visitor is not capped
    clock.advance(3599)
    assert client.simulate_get("/campaigns/7", headers={**headers, **JSON}).status_code == 204  # window's edge
    clock.advance(1)
    after = shown(client, "c" * 22)["banner_id"]
    assert after != seen[-1]  # banners again, still never twice in a row
    assert sum(n for _, _, n in events.read_hour(HOUR).impressions[1]) == 3 + 1 + 1  # capped answers: none
    assert metric_lines(client, "banners_capped_requests_total") == {
        'banners_capped_requests_total{campaign="7"}': 4.0}


def test_invalid_impressions_do_not_use_up_the_cap(real_redis):
    published(real_redis)
    client, _, _, _ = serve(real_redis, Clock(), cap=(1, 3600))
    for _ in range(3):
        shown(client, "c" * 22, BROWSER, **{"Purpose": "prefetch"})
    shown(client, "c" * 22)  # the one valid impression the cap allows
    res = client.simulate_get("/campaigns/7", headers={**JSON, "User-Agent": BROWSER,
                                                      "Cookie": "visitor_id=" + "c" * 22})
    assert res.status_code == 204


def test_a_campaigns_own_cap_wins_over_the_default(real_redis):
    published(real_redis, '{"7": ["Seven", "https://shop.example/", 1, 60]}')
    client, store, _, _ = serve(real_redis, Clock(), cap=(5, 3600))
    shown(client, "c" * 22)
    assert store.cap_of(7) == (1, 60) and store.cap_of(9) == (5, 3600)
    assert client.simulate_get("/campaigns/7", headers={**JSON, "User-Agent": BROWSER,
                                                       "Cookie": "visitor_id=" + "c" * 22}).status_code == 204


def test_the_cap_counter_lives_in_the_visitors_group_with_the_windows_ttl(real_redis):
    published(real_redis)
    clock = Clock()
    client, store, _, _ = serve(real_redis, clock, cap=(3, 600))
    shown(client, "c" * 22)
    key = KEYS.frequency("c:" + "c" * 22, 0, 7, 600, clock.ts())
    assert real_redis.get(key) == b"1" and 0 < real_redis.ttl(key) <= 600
    assert key.startswith(KEYS.group_prefixes[KEYS.group_of("c:" + "c" * 22)])


def test_the_default_cap_setting():
    assert FREQUENCY_CAP.get({"BANNERS_FREQUENCY_CAP": "3/3600"}) == (3, 3600)
    assert FREQUENCY_CAP.get({"BANNERS_FREQUENCY_CAP": "10/1d"}) == (10, 86400)
    assert FREQUENCY_CAP.get({}) is None and Settings().frequency_cap is None
    for bad in ("3", "0/1h", "3/0", "x/1h", "3/1w", "3/400d"):
        with pytest.raises(SettingError, match="BANNERS_FREQUENCY_CAP"):
            FREQUENCY_CAP.get({"BANNERS_FREQUENCY_CAP": bad})


def test_campaigns_csv_cap_columns_are_checked_and_published(real_redis, tmp_path):
    from loader.pipeline import compute
    from loader.publish import publish

    for rel, text in {"1/impressions_1.csv": "banner_id,campaign_id\n100,1\n200,2\n300,3\n",
                      "1/clicks_1.csv": "click_id,banner_id,campaign_id\n1,100,1\n",
                      "1/conversions_1.csv": "conversion_id,click_id,revenue\n1,1,2.5\n",
                      "campaigns.csv": "campaign_id,name,landing_url,cap_impressions,cap_window\n"
                                       "1,One,https://one.example/,3,1h\n"
                                       "2,Two,https://two.example/,,\n"
                                       "3,Three,https://three.example/,3,\n"
                                       "4,Four,https://four.example/,0,60\n"
                                       "5,Five,https://five.example/,2,1w\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    res = compute(tmp_path, seed=1)
    bad = res.rejects.filter(res.rejects["file"] == "campaigns.csv")
    assert sorted(bad["line"].to_list()) == [4, 5, 6]
    publish(real_redis, KEYS, res, {"seed": 1})
    raw = real_redis.hgetall(KEYS.campaign_info(real_redis.get(KEYS.current).decode()))  # a hash per campaign
    info = {k.decode(): json.loads(v) for k, v in raw.items()}
    assert info["1"] == ["One", "https://one.example/", 3, 3600] and info["2"] == ["Two", "https://two.example/"]


# -- two server processes -----------------------------------------------------------------------

@pytest.mark.slow
def test_caps_and_no_repeat_hold_for_one_visitor_on_two_server_processes(redis_proc, tmp_path):
    from tests.test_e2e import Server

    publish_rows(redis_proc.client(), STANDARD)  # campaign 9: two banners in quarter 2
    env = {"BANNERS_FREQUENCY_CAP": "7/1d"}
    hosts = [Server(redis_proc.url, tmp_path / f"host{i}", "--quarter", "2", env=env) for i in (1, 2)]
    try:
        results, lock = [], threading.Lock()

        def visit(host):
            status, _, body = host.get("/campaigns/9", {**JSON, "User-Agent": BROWSER,
                                                         "Cookie": "visitor_id=" + "t" * 22})
            with lock:
                results.append((status, json.loads(body)["banner_id"] if status == 200 else None))

        threads = [threading.Thread(target=visit, args=(hosts[i % 2],)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = Counter(s for s, _ in results)
        assert statuses == {200: 7, 204: 17}, statuses  # the cap, exactly, under concurrency
        banners = Counter(b for s, b in results if s == 200)
        # two banners and never twice in a row: whatever the order, they alternate
        assert set(banners) == {900, 901} and abs(banners[900] - banners[901]) == 1, banners
    finally:
        for host in hosts:
            host.stop()


def test_a_head_of_a_click_url_records_nothing_and_counts_as_head(real_redis):
    published(real_redis)
    clock = Clock()
    client, _, events, _ = serve(real_redis, clock)
    url = shown(client)["click_url"]
    clock.advance(5)
    assert client.simulate_head(url, headers={"User-Agent": BROWSER}).status_code == 302
    assert not events.read_hour(HOUR).clicks and not events.read_hour(HOUR).invalid_clicks
    assert metric_lines(client, "banners_clicks_total") == {
        'banners_clicks_total{quality="invalid",reason="head"}': 1.0}


@pytest.mark.slow
def test_caps_invalid_counts_and_click_rates_are_one_slot_calls_on_a_cluster(redis_cluster):
    """Every key of the pick (cap counter, invalid counter) and of the click (record,
    token index, rate counter) in the visitor's group slot: the production clients
    with slot checks would raise on a call across two slots."""
    from banner_server.clients.detect import connect_client, connect_fast

    r = connect_client(redis_cluster.url, 1.0)
    published(r)
    fast = connect_fast(redis_cluster.url, 1.0, 1.0, check_slots=True)
    clock = Clock()
    client, store, events, _ = serve(r, clock, cap=(2, 3600), fast=fast)
    for i in range(12):  # visitors of several groups
        visitor = f"{i:022d}"
        shown(client, visitor)
        shown(client, visitor, GOOGLEBOT)  # invalid: checked, not counted against the cap
        url = shown(client, visitor)["click_url"]
        assert client.simulate_get("/campaigns/7", headers={**JSON, "User-Agent": BROWSER,
                                                           "Cookie": f"visitor_id={visitor}"}).status_code == 204
        clock.advance(2)
        click(client, url, visitor)
    assert store.keys.groups == 16 and not store.degraded
    recorded = events.read_hour(HOUR)
    assert sum(n for _, _, n in recorded.impressions[1]) == 24 and len(recorded.clicks[1]) == 12
    assert sum(n for *_, n in recorded.invalid_impressions[1]) == 12


def test_the_dashboard_shows_valid_and_invalid_traffic_by_reason(real_redis):
    """Issue 20: /metrics *and the dashboard* show valid and invalid by reason."""
    published(real_redis)
    clock = Clock()
    client, _, _, _ = serve(real_redis, clock)
    shown(client)  # a browser: valid
    shown(client, "b" * 22, GOOGLEBOT)
    shown(client, "c" * 22, GOOGLEBOT)
    shown(client, "p" * 22, BROWSER, **{"Sec-Purpose": "prefetch"})
    page = client.simulate_get("/dashboard", headers=ADMIN)
    assert page.status_code == 200
    assert "Valid impressions: 1 " in page.text and "invalid impressions by reason: bot: 2, prefetch: 1" in page.text
    data = client.simulate_get("/dashboard", headers={**ADMIN, **JSON}).json
    assert data["traffic_quality"]["valid"] == 1
    assert data["traffic_quality"]["invalid"] == {"bot": 2, "prefetch": 1}
