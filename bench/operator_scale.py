"""What a big catalog costs a worker and Redis, and how big the operator pages are.

    python bench/big_catalog.py /tmp/big && banners load /tmp/big --redis-url redis://127.0.0.1:6391/0
    python bench/operator_scale.py redis://127.0.0.1:6391/0

Prints Redis' memory (the version's selections pieces and campaigns map), a worker's
snapshot fetch (the quarter now and the next, on the pick's 50 ms client for the manifest
and its own 10 s one for the pieces: time, RSS before and after), and the size and time of `/`,
`/dashboard` and a campaign's dashboard page (through falcon.testing: no network).
"""

from __future__ import annotations

import gc
import resource
import sys
import time

import falcon.testing
import psutil
import redis

from banner_server.config import Settings
from banner_server.layout.pieces import ids_key, manifest_of, part_key, pieces
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
    manifest = manifest_of(r.get(keys.selections(ver)))
    if manifest is None:
        print(f"  selections JSON (format 1) {mb(r.memory_usage(keys.selections(ver)) or 0)}")
    else:
        names = [(part_key(keys, ver, q, i), ids_key(keys, ver, q, i)) for q, i in pieces(manifest)]
        parts = [r.strlen(p) for p, _ in names]
        ids = [r.strlen(i) for _, i in names]
        print(f"  selections in {len(names)} pieces: records {mb(sum(parts))} (largest {mb(max(parts))}), "
              f"compact ids {mb(sum(ids))} (largest {mb(max(ids))}), manifest "
              f"{len(r.get(keys.selections(ver))) / 1e3:.0f} KB")
    print(f"  campaigns map {mb(r.memory_usage(keys.campaign_info(ver), samples=0) or 0)} ({campaigns} campaigns)")
    proc = psutil.Process()
    gc.collect()
    before = proc.memory_info().rss
    store = SelectionStore(redis.Redis.from_url(url, socket_timeout=0.05), keys)
    store.quarter_now = lambda: 1  # as `banners serve` wires it: the quarter now and the next
    start = time.perf_counter()
    store.ensure_snapshot()
    took = time.perf_counter() - start
    held = sum(ids.nbytes() for ids in store.selections.values())
    print(f"worker snapshot (quarters {sorted(store.selections)} held, {mb(held)} of arrays): {took:.2f} s, "
          f"RSS {mb(before)} -> {mb(proc.memory_info().rss)} "
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
