"""Redis memory per visitor: N visitors each served once through the real pick script.

    python bench/visitor_memory.py [-n 100000]
"""

from __future__ import annotations

import argparse
import secrets
import sys

import redis
from harness import Workspace

from banner_server.layout.catalog import read_selections
from banner_server.layout.keys import Keys
from banner_server.layout.scripts import PICK


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100_000)
    args = ap.parse_args(argv)
    keys = Keys()
    with Workspace() as ws:
        ws.start_redis()
        ws.load(ws.data_dir(0.02))
        r = redis.Redis.from_url(ws.redis_url)
        script = r.register_script(PICK.source)
        keys = keys.with_groups(int(r.get(keys.groups_key)))
        ver = r.get(keys.current).decode()
        campaigns = sorted({rec["campaign_id"] for rec in read_selections(r, keys, ver)[1]
                            if rec["quarter"] == 1})
        before = r.info("memory")["used_memory"]
        pipe = r.pipeline(transaction=False)
        for i in range(args.n):
            visitor = "c:" + secrets.token_urlsafe(16)
            g = keys.group_of(visitor)
            script(keys=[keys.group_currents[g], keys.selection_set(ver, 1, campaigns[i % len(campaigns)], g),
                         keys.visitor(visitor, g)], args=[ver, 86400], client=pipe)
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        after = r.info("memory")["used_memory"]
        per = (after - before) / args.n
        sample = next(r.scan_iter(match=keys.prefix + "*:vis:*"))
        print(f"{args.n} visitors: {after - before:,} bytes, {per:.0f} bytes per visitor "
              f"(MEMORY USAGE of one key: {r.memory_usage(sample)} bytes; TTL {r.ttl(sample)} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
