"""Every route and status through falcon.testing, on fakeredis and on a real redis-server."""

import datetime as dt
from collections import Counter

import pytest

from banner_server.clock import quarter_of, quarter_source, system_clock
from banner_server.web.metrics import Metrics
from tests.serving import ADMIN, STANDARD, Clock, make_client, publish_rows

JSON = {"Accept": "application/json"}


@pytest.fixture
def loaded(server_redis):
    publish_rows(server_redis[0], STANDARD)
    return server_redis


@pytest.fixture
def client(loaded):
    return make_client(loaded)[0]


def visitor_cookie(result):
    return result.cookies["visitor_id"].value


def cookie_id(value: str) -> str:
    """The random id part of a visitor cookie (`<22 chars>.<last banner>`)."""
    vid, banner = value.split(".")
    assert len(vid) == 22 and banner.isdigit()
    return vid


def test_campaign_html_by_default(client):
    res = client.simulate_get("/campaigns/7")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    assert res.headers["cache-control"] == "no-store"
    assert '<img src="/banners/' in res.text and 'alt="Banner ' in res.text
    assert "quarter 1" in res.text and "Campaign 7" in res.text
    assert res.headers["x-content-type-options"] == "nosniff"
    assert "img-src 'self'" in res.headers["content-security-policy"]
    assert res.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("headers, query, is_json", [
    ({"Accept": "application/json"}, None, True),
    ({"Accept": "APPLICATION/JSON"}, None, True),  # media types are case-insensitive
    ({"Accept": "application/*"}, None, True),
    ({"Accept": "text/*, application/json;q=0.9"}, None, False),
    ({"Accept": "text/html;q=0.5, application/json"}, None, True),
    ({"Accept": "application/json;q=0"}, None, False),
    ({"Accept": "*/*, application/json"}, None, True),  # named at least as high as HTML
    ({"Accept": "text/html,application/json"}, None, True),
    ({"Accept": "application/json;q=0.5, text/html"}, None, False),
    ({"Accept": "*/*"}, None, False),
    ({}, None, False),
    ({"Accept": "text/html"}, "format=json", True),
    ({"Accept": "application/json"}, "format=html", False),
    ({"Accept": "application/json;q=garbage"}, None, False),
])
def test_content_negotiation(client, headers, query, is_json):
    res = client.simulate_get("/campaigns/7", headers=headers, query_string=query)
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("application/json" if is_json else "text/html")


def test_accept_cache_is_bounded_and_keeps_answering(client):
    from banner_server.web.html import _accept_prefers_json

    for i in range(3000):  # any client can send new values: old ones age out
        res = client.simulate_get("/campaigns/7", headers={"Accept": f"application/json, text/x-{i}"})
        assert res.headers["content-type"].startswith("application/json")
    info = _accept_prefers_json.cache_info()
    assert info.maxsize == 1024 and info.currsize <= 1024


def test_campaign_json_shape_and_alias(client):
    res = client.simulate_get("/campaign/7", headers=JSON)
    body = res.json
    assert set(body) == {"campaign_id", "quarter", "banner_id", "image_url", "click_url", "name"}
    assert body["campaign_id"] == 7 and body["quarter"] == 1
    assert body["banner_id"] in (101, 200, 300, 400, 500)
    assert body["image_url"] == f"/banners/{body['banner_id']}.svg"
    assert res.headers["cache-control"] == "no-store"


def test_visitor_cookie_attributes(client):
    res = client.simulate_get("/campaigns/7")
    c = res.cookies["visitor_id"]
    assert c.http_only and c.same_site == "Lax" and c.max_age == 365 * 24 * 3600 and c.path == "/"
    body = client.simulate_get("/campaigns/7", headers={**JSON, "User-Agent": "other"})
    assert cookie_id(c.value) and not c.secure
    assert body.cookies["visitor_id"].value.endswith(f".{body.json['banner_id']}")  # carries the banner shown


def test_unknown_campaign_404_json_and_html(client):
    res = client.simulate_get("/campaigns/999", headers=JSON)
    assert res.status_code == 404 and "Campaign 999 has no banners in quarter 1" in res.json["detail"]
    res = client.simulate_get("/campaigns/999")
    assert res.status_code == 404 and res.headers["content-type"].startswith("text/html")
    assert "Campaign 999 has no banners" in res.text


def test_campaign_without_data_this_quarter_is_404(loaded):
    client, _ = make_client(loaded, clock=Clock(minute=20))  # quarter 2: campaign 8 only in q1
    assert client.simulate_get("/campaigns/8").status_code == 404
    assert client.simulate_get("/campaigns/9").status_code == 200


@pytest.mark.parametrize("path", ["/campaigns/abc", "/campaigns/-1", "/campaigns/1.5", "/campaigns/%00",
                                  "/campaigns/" + "9" * 40, "/campaigns/%E2%82%AC", "/campaigns/7%20"])
def test_bad_campaign_ids_are_400_never_500(client, path):
    res = client.simulate_get(path, headers=JSON)
    assert res.status_code == 400 and "integer from 0 to 9223372036854775807" in res.json["detail"]
    assert res.headers["cache-control"] == "no-store" and "visitor_id" not in res.cookies


@pytest.mark.parametrize("campaign, status", [(9223372036854775807, 200), (9223372036854775808, 400),
                                              (10**18, 200), (0, 200)])
def test_the_whole_id_range_is_served(server_redis, campaign, status):
    """Ids are 0 .. 2**63-1 in the loader and the server alike."""
    big_banner = 2**63 - 1
    publish_rows(server_redis[0], [(1, c, [big_banner, 10**18 + 1]) for c in (0, 10**18, 2**63 - 1)])
    client, _ = make_client(server_redis)
    res = client.simulate_get(f"/campaigns/{campaign}", headers=JSON)
    assert res.status_code == status
    if status == 200:
        assert res.json["banner_id"] in (big_banner, 10**18 + 1)
        assert client.simulate_get(res.json["image_url"]).status_code == 200
        assert f'/campaigns/{campaign}"' in client.simulate_get("/").text
    assert client.simulate_get(f"/banners/{2**63}.svg").status_code == 400


def test_unknown_path_404_explains(client):
    res = client.simulate_get("/nope", headers=JSON)
    assert res.status_code == 404 and "/campaigns/{id}" in res.json["detail"]
    res = client.simulate_get("/campaigns")
    assert res.status_code == 404 and res.headers["content-type"].startswith("text/html")
    assert "/campaigns/{id}" in res.text and res.headers["cache-control"] == "no-store"


def test_errors_set_no_cookie_and_are_not_cached(client):
    for path, status in (("/campaigns/999", 404), ("/campaigns/x", 400), ("/nope", 404)):
        res = client.simulate_get(path)
        assert res.status_code == status
        assert "visitor_id" not in res.cookies and res.headers["cache-control"] == "no-store"
    res = client.simulate_post("/campaigns/7", headers=JSON)
    assert res.status_code == 405 and "GET" in res.json["detail"] and res.headers["allow"]


def draws(client, paths, headers=None, **kw):
    """The banner ids answered to GETs of `paths`, in order."""
    return [client.simulate_get(p, headers={**JSON, **(headers or {})}, **kw).json["banner_id"] for p in paths]


def cookie_of_first(client, path="/campaigns/7"):
    first = client.simulate_get(path, headers=JSON)
    return first.json["banner_id"], {"Cookie": f"visitor_id={visitor_cookie(first)}"}


def test_no_repeat_for_a_cookie_visitor_and_every_member_appears(client):
    first, cookie = cookie_of_first(client)
    seen = [first] + draws(client, ["/campaigns/7"] * 300, cookie)
    assert all(a != b for a, b in zip(seen, seen[1:]))
    counts = Counter(seen)
    assert set(counts) == {101, 200, 300, 400, 500}
    assert min(counts.values()) > 30  # roughly uniform: 60 expected each


def test_no_repeat_for_a_cookieless_visitor(client):
    seen = draws(client, ["/campaigns/7"] * 100, {"User-Agent": "ua-1"}, remote_addr="10.0.0.1")
    assert all(a != b for a, b in zip(seen, seen[1:]))


@pytest.mark.parametrize("other", [{"User-Agent": "b", "addr": "10.0.0.1"}, {"User-Agent": "a", "addr": "10.0.0.2"}])
def test_cookieless_visitors_are_told_apart_by_address_and_agent(loaded, other):
    """Two cookie-less visitors interleaved on a two-banner campaign: each one's own
    sequence alternates; were they one visitor, each would see repeats."""
    client, _ = make_client(loaded, clock=Clock(minute=20))
    a, b = [], []
    for _ in range(20):
        a += draws(client, ["/campaigns/9"], {"User-Agent": "a"}, remote_addr="10.0.0.1")
        b += draws(client, ["/campaigns/9"], {"User-Agent": other["User-Agent"]}, remote_addr=other["addr"])
    assert all(x != y for x, y in zip(a, a[1:])) and all(x != y for x, y in zip(b, b[1:]))


def test_clients_that_drop_cookies_cost_one_redis_key(loaded):
    """A client that never sends its cookie back is one key (its address and
    User-Agent), however many requests it makes: nothing is stored per cookie issued."""
    client, _ = make_client(loaded)
    redis_client = loaded[0]
    before = len(list(redis_client.scan_iter(match="banners:*:vis:*")))
    seen = draws(client, ["/campaigns/7"] * 200, {"User-Agent": "no-cookies"}, remote_addr="10.7.7.7")
    assert all(x != y for x, y in zip(seen, seen[1:]))
    assert len(list(redis_client.scan_iter(match="banners:*:vis:*"))) - before == 1


def test_first_cookie_carries_the_history_on(client):
    for _ in range(50):
        ua = {"User-Agent": f"fresh-{_}", **JSON}
        first = client.simulate_get("/campaigns/7", headers=ua, remote_addr="10.1.1.1")
        cookie = visitor_cookie(first)
        second = client.simulate_get("/campaigns/7", headers={**ua, "Cookie": f"visitor_id={cookie}"},
                                     remote_addr="10.9.9.9")
        assert second.json["banner_id"] != first.json["banner_id"]
        assert "visitor_id" not in second.cookies  # no new cookie once one is sent


def test_no_repeat_across_campaigns_for_the_same_visitor(server_redis):
    # two campaigns sharing their banners: "twice in a row" spans campaigns
    publish_rows(server_redis[0], STANDARD + [(1, 11, [1, 2, 3]), (1, 12, [1, 2, 3])])
    client, _ = make_client(server_redis)
    first, cookie = cookie_of_first(client, "/campaigns/11")
    seen = [first] + draws(client, ["/campaigns/12", "/campaigns/11"] * 60, cookie)
    assert all(a != b for a, b in zip(seen, seen[1:]))
    assert set(seen) == {1, 2, 3}


def test_single_banner_selection_repeats(client):
    res = [client.simulate_get("/campaigns/8", headers=JSON).json["banner_id"] for _ in range(3)]
    assert res == [800, 800, 800]


def test_forged_or_huge_cookie_is_ignored_and_replaced(client):
    for value in ["x", "a" * 5000, "../../etc", "é" * 22, "abc def"]:
        res = client.simulate_get("/campaigns/7", headers={"Cookie": f"visitor_id={value}"})
        assert res.status_code == 200 and cookie_id(visitor_cookie(res))


@pytest.mark.parametrize("minute, quarter", [(0, 1), (14, 1), (15, 2), (29, 2), (30, 3), (44, 3), (45, 4), (59, 4)])
def test_quarter_boundaries(loaded, minute, quarter):
    clock = Clock(minute)
    client, _ = make_client(loaded, clock=clock)
    body = client.simulate_get("/campaigns/7", headers=JSON).json
    assert body["quarter"] == quarter
    assert body["banner_id"] in (100 + quarter, 200, 300, 400, 500)


def test_quarter_changes_with_the_clock_between_requests(loaded):
    clock = Clock(59)
    client, _ = make_client(loaded, clock=clock)
    assert client.simulate_get("/campaigns/7", headers=JSON).json["quarter"] == 4
    clock.set(0, hour=11)
    assert client.simulate_get("/campaigns/7", headers=JSON).json["quarter"] == 1


def test_time_zone_moves_the_quarter():
    utc = dt.datetime(2026, 11, 28, 10, 10, tzinfo=dt.timezone.utc)
    assert quarter_of(system_clock("UTC", lambda: utc)()) == 1
    assert quarter_of(system_clock("Asia/Kolkata", lambda: utc)()) == 3      # 15:40
    assert quarter_of(system_clock("Asia/Kathmandu", lambda: utc)()) == 4    # 15:55
    assert quarter_source(lambda: utc, pinned=2)() == 2


def test_pinned_quarter(loaded):
    client, _ = make_client(loaded, pinned=3)
    assert client.simulate_get("/campaigns/10", headers=JSON).json["quarter"] == 3


def test_banner_svg(client):
    res = client.simulate_get("/banners/123.svg")
    assert res.status_code == 200 and res.headers["content-type"] == "image/svg+xml"
    assert b'width="300" height="250"' in res.content and b">123<" in res.content
    assert "max-age=86400" in res.headers["cache-control"]
    assert client.simulate_get("/banners/124.svg").content != res.content


def test_banner_png_from_images_dir_with_sniffed_type(loaded, tmp_path):
    (tmp_path / "image_200.png").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    (tmp_path / "image_300.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    client, _ = make_client(loaded, images=tmp_path)
    assert client.simulate_get("/banners/200.png").headers["content-type"] == "image/jpeg"
    assert client.simulate_get("/banners/300.png").headers["content-type"] == "image/png"
    assert client.simulate_get("/banners/400.png").status_code == 404
    urls = {client.simulate_get("/campaigns/7", headers=JSON).json["image_url"] for _ in range(60)}
    assert "/banners/200.png" in urls and "/banners/400.svg" in urls


@pytest.mark.parametrize("path", ["/banners/../etc/passwd", "/banners/..%2F..%2Fetc%2Fpasswd", "/banners/1.gif",
                                  "/banners/image_1.png", "/banners/%2e%2e", "/banners/1.svg/x", "/banners/"])
def test_no_path_traversal(loaded, tmp_path, path):
    (tmp_path / "image_1.png").write_bytes(b"\xff\xd8\xff")
    client, _ = make_client(loaded, images=tmp_path)
    res = client.simulate_get(path)
    assert res.status_code == 404 and b"\xff\xd8" not in res.content


def test_index_lists_current_quarter_campaigns(client, loaded):
    res = client.simulate_get("/")
    assert res.status_code == 200 and '<a href="/campaigns/7">' in res.text and '/campaigns/8"' in res.text
    assert '/campaigns/9"' not in res.text
    assert client.simulate_get("/", headers=JSON).json["campaigns"][0] == {"campaign_id": 7, "name": None, "url": "/campaigns/7"}


def test_healthz_and_readyz(client):
    assert client.simulate_get("/healthz").status_code == 200
    res = client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN)
    assert res.status_code == 200 and res.json["quarters"] == [1, 2, 3, 4]


def test_readyz_503_when_quarters_are_missing_or_nothing_loaded(server_redis):
    client, _ = make_client(server_redis)
    res = client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN)
    assert res.status_code == 503 and "nothing published" in res.json["reason"]
    publish_rows(server_redis[0], [(1, 7, [1, 2]), (2, 7, [1])])
    res = client.simulate_get("/readyz", query_string="detail=1", headers=ADMIN)
    assert res.status_code == 503 and res.json["reason"] == "quarters not loaded: [3, 4]"


def test_nothing_loaded_is_503_with_retry_after(server_redis):
    client, _ = make_client(server_redis)
    res = client.simulate_get("/campaigns/7", headers=JSON)
    assert res.status_code == 503 and res.headers["retry-after"] and "banners load" in res.json["detail"]
    assert "visitor_id" not in res.cookies and res.headers["cache-control"] == "no-store"
    assert "banners load" in client.simulate_get("/").text


def test_new_version_is_picked_up_on_the_next_request(loaded):
    client, store = make_client(loaded)
    v1 = client.simulate_get("/campaigns/7").headers["x-banners-version"]
    v2 = publish_rows(loaded[0], [(q, 7, [42, 43]) for q in (1, 2, 3, 4)])
    res = client.simulate_get("/campaigns/7", headers=JSON)
    assert res.json["banner_id"] in (42, 43) and res.headers["x-banners-version"] == v2 != v1
    assert store.version == v2


def test_metrics(loaded):
    client, _ = make_client(loaded, metrics=Metrics())
    for _ in range(3):
        client.simulate_get("/campaigns/7")
    client.simulate_get("/campaigns/999")
    text = client.simulate_get("/metrics", headers=ADMIN).text
    assert 'banners_http_requests_total{route="/campaigns/{id}",status="200"} 3' in text
    assert 'banners_http_requests_total{route="/campaigns/{id}",status="404"} 1' in text
    assert 'banners_served_total{campaign="7"} 3' in text
    assert 'banners_http_request_duration_seconds_count{route="/campaigns/{id}"} 4' in text


def test_metrics_add_up_across_workers(tmp_path):
    a, b = Metrics(tmp_path), Metrics(tmp_path)  # two workers' files in one folder
    a.observe("/x", "200", 0.001)
    b.observe("/x", "200", 0.002)
    b.banner_served(1, 7, 101)
    text = Metrics(tmp_path).render()
    assert 'banners_http_requests_total{route="/x",status="200"} 2' in text
    assert 'banners_http_request_duration_seconds_bucket{route="/x",le="0.001"} 1' in text
    assert 'banners_http_request_duration_seconds_bucket{route="/x",le="+Inf"} 2' in text
    assert 'banners_served_total{campaign="7"} 1' in text
    # a worker that exited (another process, gone): its counts stay in the sum
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from banner_server.web.metrics import Metrics; "
            "Metrics(Path(sys.argv[1])).observe('/x', '200', 0.001)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert 'banners_http_requests_total{route="/x",status="200"} 3' in Metrics(tmp_path).render()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_405(client, method):
    assert client.simulate_request(method, "/campaigns/7").status_code == 405


def test_head_and_options(client):
    assert client.simulate_head("/campaigns/7").status_code == 200
    assert client.simulate_options("/campaigns/7").status_code in (200, 204)


def test_forwarded_for_only_from_trusted_proxies():
    import ipaddress

    from banner_server.web.visitors import client_address

    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_address("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9"  # not a proxy of ours
    assert client_address("10.0.0.2", "1.2.3.4", trusted) == "1.2.3.4"
    assert client_address("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7", trusted) == "1.2.3.4"  # right-most untrusted
    assert client_address("10.0.0.2", "garbage", trusted) == "garbage"
    assert client_address("10.0.0.2", "1.2.3.4", ()) == "10.0.0.2"


def test_gunicorn_conf_falls_back_to_gthread_without_meinheld(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    conf = root / "banner_server" / "hosting" / "gunicorn_conf.py"  # what `banners serve` hands gunicorn
    code = ("import sys, runpy; sys.modules['meinheld'] = None; sys.modules['banner_server.hosting.worker'] = None; "
            f"c = runpy.run_path({str(conf)!r}); print(c['worker_class'], c['_fallback'] is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root).stdout.split()
    assert out == ["gthread", "True"]
    code = f"import runpy; c = runpy.run_path({str(conf)!r}); print(c['worker_class'], c['reuse_port'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root).stdout.split()
    assert out == ["banner_server.hosting.worker.MeinheldWorker", "True"]


def test_serve_rejects_bad_options_with_usage_errors(tmp_path):
    from click.testing import CliRunner

    from banner_server import cli

    runner = CliRunner()
    assert runner.invoke(cli.main, ["serve", "--tz", "Mars/Olympus"]).exit_code == 2
    assert runner.invoke(cli.main, ["serve", "--trusted-proxy", "nope"]).exit_code == 2
    assert runner.invoke(cli.main, ["serve", "--quarter", "5"]).exit_code == 2
    assert runner.invoke(cli.main, ["serve", "--images", str(tmp_path / "missing")]).exit_code == 2


def test_settings_read_the_redis_budgets_from_the_environment():
    from banner_server.config import Settings

    s = Settings.from_env({"BANNERS_REDIS_TIMEOUT": "0.1", "BANNERS_REDIS_CONNECT_TIMEOUT": "2", "BANNERS_REDIS_RETRY": "3"})
    assert (s.redis_timeout, s.redis_connect_timeout, s.redis_retry) == (0.1, 2.0, 3.0)
    d = Settings.from_env({})
    assert d.redis_connect_timeout > d.redis_timeout  # connecting gets more than one command



@pytest.mark.parametrize("name, value", [("BANNERS_REDIS_TIMEOUT", "fast"), ("BANNERS_REDIS_RETRY", "0"),
                                         ("BANNERS_VISITOR_TTL", "-5"), ("BANNERS_REDIS_CONNECT_TIMEOUT", "1e")])
def test_a_bad_setting_names_its_variable(name, value):
    from banner_server.config import Settings

    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_dashboard_before_any_load_says_what_to_do(server_redis):
    # The dashboard's figures, pages and access: tests/test_operator.py.
    client, _ = make_client(server_redis)
    res = client.simulate_get("/dashboard", headers=ADMIN)
    assert res.status_code == 200 and "banners load" in res.text
    assert client.simulate_get("/dashboard", headers={**ADMIN, **JSON}).json["campaigns"] == []


def test_every_banner_answer_is_counted_as_an_impression(loaded):
    """One counter per campaign and banner, per hour and quarter (in the visitor's
    group): memory follows the banners, not the traffic."""
    from banner_server.layout.keys import Keys

    client, store = make_client(loaded, hour=lambda: "2026-11-28T10")
    served = Counter()
    for i in range(30):
        headers = {**JSON, "Cookie": f"visitor_id={i:022d}"}
        path = ("/campaigns/7", "/campaigns/7/embed")[i % 2]
        res = client.simulate_get(path, headers=headers)
        assert res.status_code == 200
        if path.endswith("embed"):
            banner = int(res.text.split('/banners/')[1].split('.')[0])
        else:
            banner = res.json["banner_id"]
        served[f"7:{banner}"] += 1
    keys = Keys().with_groups(store.keys.groups)
    counted = Counter()
    for key in keys.all_impressions("2026-11-28T10", 1):
        for field, n in loaded[0].hgetall(key).items():
            counted[field.decode()] += int(n)
            assert loaded[0].ttl(key) == -1  # never evicted; EventStore.prune removes old hours
    assert counted == served
    assert loaded[0].zscore(keys.hours(0), "2026-11-28T10") is not None  # where prune finds the hour


def test_json_carries_a_signed_click_url_and_the_name(loaded):
    from banner_server.web.tokens import ClickSigner

    signer = ClickSigner(b"k" * 32)
    client, _ = make_client(loaded, signer=signer, now=lambda: 1_800_000_000)
    body = client.simulate_get("/campaigns/7", headers=JSON).json
    assert body["name"] is None  # no campaigns.csv published
    token = body["click_url"].removeprefix("/click/")
    assert signer.verify(token, 1_800_000_000) == (7, body["banner_id"], 1_800_000_000)
    page = client.simulate_get("/campaigns/7").text
    assert '<a href="/click/' in page  # the page's picture links to its click URL too


def test_embed_document_for_an_iframe(loaded):
    client, _ = make_client(loaded, frame_ancestors="https://shop.example")
    res = client.simulate_get("/campaigns/7/embed")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    assert "frame-ancestors https://shop.example" in res.headers["content-security-policy"]
    assert 'target="_top"' in res.text and '<img src="/banners/' in res.text and 'href="/click/' in res.text
    assert res.headers["cache-control"] == "no-store" and "visitor_id" in res.cookies
    assert make_client(loaded)[0].simulate_get("/campaigns/7/embed").headers[
        "content-security-policy"].endswith("frame-ancestors *")
    assert client.simulate_get("/campaigns/999/embed").status_code == 404
    assert client.simulate_get("/campaigns/x/embed").status_code == 400
    # same visitor, same no-repeat rule as the page
    cookie = {"Cookie": "visitor_id=" + "m" * 22}
    seen = [client.simulate_get("/campaigns/7/embed", headers=cookie).text.split("/banners/")[1][:3]
            for _ in range(30)]
    assert all(a != b for a, b in zip(seen, seen[1:]))


def test_embed_js_is_a_small_script(client):
    res = client.simulate_get("/embed.js")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/javascript")
    assert "data-campaign" in res.text and "fetch(" in res.text and len(res.content) < 3000


def test_cors_for_named_origins_with_credentials_or_any_without(loaded):
    named, _ = make_client(loaded, cors_origins=("https://shop.example",))
    res = named.simulate_get("/campaigns/7", headers={**JSON, "Origin": "https://shop.example"})
    assert res.headers["access-control-allow-origin"] == "https://shop.example"
    assert res.headers["access-control-allow-credentials"] == "true" and "Origin" in res.headers["vary"]
    res = named.simulate_get("/campaigns/7", headers={**JSON, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in res.headers
    anyone, _ = make_client(loaded, cors_origins=("*",))
    res = anyone.simulate_get("/campaigns/7", headers={**JSON, "Origin": "https://evil.example"})
    assert res.headers["access-control-allow-origin"] == "*" and "access-control-allow-credentials" not in res.headers
    assert "access-control-allow-origin" not in make_client(loaded)[0].simulate_get(
        "/campaigns/7", headers={**JSON, "Origin": "https://shop.example"}).headers
