"""Stress test: returning visitors (cookies) asking random campaigns.

Every answer is checked: 200, the banner belongs to the published selection of the
quarter and campaign it names, and a visitor never gets the same banner twice in a
row.  A violation is a locust failure.  The published selections are read once from
Redis (BANNERS_REDIS_URL) when the test starts.

    locust -f bench/locustfile.py --host http://127.0.0.1:8000 --headless -u 50 -t 60s
"""

from __future__ import annotations

import os
import random

import redis
from locust import FastHttpUser, events, task

SELECTIONS: dict[tuple[int, int], set[int]] = {}
CAMPAIGNS: list[int] = []


@events.test_start.add_listener
def read_selections(environment, **kwargs):
    from banner_server.layout.catalog import read_selections
    from banner_server.layout.keys import Keys

    client = redis.Redis.from_url(os.environ.get("BANNERS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    ver, records = read_selections(client, Keys(os.environ.get("BANNERS_KEY_PREFIX", "banners:")))
    if ver is None:
        raise RuntimeError("nothing is published in that Redis")
    for rec in records:
        SELECTIONS[rec["quarter"], rec["campaign_id"]] = {b["banner_id"] for b in rec["banners"]}
    CAMPAIGNS[:] = sorted({c for _, c in SELECTIONS})


class Visitor(FastHttpUser):
    def on_start(self):
        self.cookie = None
        self.last = None

    @task
    def banner(self):
        campaign = random.choice(CAMPAIGNS)
        headers = {"Accept": "application/json"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        with self.client.get(f"/campaigns/{campaign}", headers=headers, name="/campaigns/{id}",
                             catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
                return
            body = resp.json()
            set_cookie = resp.headers.get("Set-Cookie")
            if set_cookie and not self.cookie:
                self.cookie = set_cookie.split(";", 1)[0]
            banner = body["banner_id"]
            allowed = SELECTIONS.get((body["quarter"], campaign))
            if allowed is None or banner not in allowed:
                resp.failure(f"banner {banner} is not in the selection of campaign {campaign} "
                             f"quarter {body['quarter']}")
            elif banner == self.last:
                resp.failure(f"banner {banner} twice in a row")
            self.last = banner
