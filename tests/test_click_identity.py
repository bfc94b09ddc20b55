"""Through the whole app: a banner's click URL is signed for the visitor it was shown
to, and a click by someone else is recorded with the other_visitor flag (issue 19);
a client without a cookie is the same visitor when it clicks with the cookie the
answer set, or still without one (third-party cookies blocked)."""

import re
from zoneinfo import ZoneInfo

from banner_server.layout.events import EventStore
from tests.serving import KEYS, STANDARD, Clock, make_client, publish_rows

ZONE = ZoneInfo("UTC")


def click_id(res) -> int:
    return int(re.search(r"click_id=(\d+)", res.headers["Location"]).group(1))


def banner(client, **headers):
    res = client.simulate_get("/campaigns/7", headers={"Accept": "application/json", **headers})
    assert res.status_code == 200
    return res.json["click_url"], res.cookies.get("visitor_id")


def test_a_click_is_flagged_only_when_another_visitor_clicks(real_redis):
    publish_rows(real_redis, STANDARD)
    real_redis.set(KEYS.campaign_info(real_redis.get(KEYS.current).decode()),
                   '{"7": ["Seven", "https://shop.example/"]}')
    clock = Clock()
    events = EventStore(real_redis, KEYS)
    client, _ = make_client(real_redis, clock, events=events, event_clock=clock,
                            now=lambda: clock().timestamp() - 5)
    mine = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}
    theirs = {"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15"}

    url, cookie = banner(client, **mine)  # no cookie: signed for address + User-Agent
    own = client.simulate_get(url, headers={**mine, "Cookie": f"visitor_id={cookie.value}"})
    assert events.click(click_id(own), tz=ZONE).other_visitor is False
    url, _ = banner(client, **mine)
    cookieless = client.simulate_get(url, headers=mine)  # the cookie never came back
    assert events.click(click_id(cookieless), tz=ZONE).other_visitor is False
    url, _ = banner(client, **mine, Cookie=f"visitor_id={cookie.value}")  # signed for the cookie
    other = client.simulate_get(url, headers=theirs)
    assert events.click(click_id(other), tz=ZONE).other_visitor is True
