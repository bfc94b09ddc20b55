"""What a big catalog costs a worker and Redis, and how big the operator pages are.

    python bench/big_catalog.py /tmp/big && banners load /tmp/big --redis-url redis://127.0.0.1:6391/0
    python bench/operator_scale.py redis://127.0.0.1:6391/0

Prints Redis' memory (the version's selections JSON and campaigns map), a worker's
snapshot fetch (time, RSS before and after), and the size and time of `/`,
`/dashboard` and a campaign's dashboard page (through falcon.testing: no network).
"""

from __future__ import annotations

import resource
import sys
import time

import falcon.testing
import psutil
import redis

from banner_server.config import Settings
from banner_server.layout.keys import Keys
from banner_server.web.app import create_app
from banner_server.web.auth import AdminAuth
from banner_server.web.services import Services
from banner_server.web.store import SelectionStore

TOKEN = "bench-admin-token-0123456789"


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def main(url: str) -> None:
    r = redis.Redis.from_url(url, socket_timeout=30)
    keys = Keys()
    ver = r.get(keys.current).decode()
    info = r.info("memory")
    campaigns = r.hlen(keys.campaign_info(ver)) if r.type(keys.campaign_info(ver)) == b"hash" else "string"
    print(f"version {ver}: Redis used_memory {mb(info['used_memory'])} (one version: this minus an empty Redis)")
    print(f"  selections JSON {mb(r.memory_usage(keys.selections(ver)) or 0)}, "
          f"campaigns map {mb(r.memory_usage(keys.campaign_info(ver), samples=0) or 0)} ({campaigns} campaigns)")
    proc = psutil.Process()
    before = proc.memory_info().rss
    store = SelectionStore(redis.Redis.from_url(url, socket_timeout=30), keys)
    start = time.perf_counter()
    store.ensure_snapshot()
    took = time.perf_counter() - start
    print(f"worker snapshot: {took:.2f} s, RSS {mb(before)} -> {mb(proc.memory_info().rss)} "
          f"(peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB)")
    services = Services(store, lambda: 1, admin=AdminAuth(TOKEN))
    client = falcon.testing.TestClient(create_app(Settings(), services))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path, query in (("/", None), ("/dashboard", None), ("/dashboard", "page=1000"),
                        ("/dashboard", "q=Campaign 99999"), ("/dashboard/campaigns/1", None)):
        for attempt in ("first", "cached"):
            start = time.perf_counter()
            res = client.simulate_get(path, query_string=query, headers=auth)
            print(f"  {path}{'?' + query if query else ''} ({attempt}): {res.status_code}, "
                  f"{len(res.content) / 1e3:.0f} KB, {(time.perf_counter() - start) * 1e3:.0f} ms")
    print(f"worker RSS after the pages: {mb(proc.memory_info().rss)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6391/0")
