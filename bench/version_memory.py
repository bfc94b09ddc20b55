"""Redis memory of one published version: MEMORY USAGE summed over its keys, for the
real set (when ../shared/datachef is there) and for sample data of the real set's size.
A load keeps KEEP_VERSIONS of them (the current one and the 3 before it).

    python bench/version_memory.py [--scale 1.0]
"""

from __future__ import annotations

import argparse
import sys

import redis
from harness import BIN, REAL_DATA, Workspace, run

from banner_server.layout.catalog import current_version
from banner_server.layout.pieces import version_key_names
from banner_server.layout.keys import Keys
from loader.publish import KEEP_VERSIONS


def measure(ws: Workspace, r: redis.Redis, data, keys: Keys) -> str:
    r.flushall()
    ws.load(data)
    ver = current_version(r, keys)
    vkeys = keys.with_groups(int(r.get(keys.groups_key)))
    names = [n for n in version_key_names(r, vkeys, ver) if r.exists(n)]
    pipe = r.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name, samples=0)  # samples=0: every element, not an estimate
    sizes = pipe.execute()
    selections = sum(size for name, size in zip(names, sizes) if ":part:" in name or ":ids:" in name
                     or name == keys.selections(ver))
    total = sum(sizes)
    return (f"{data}: version {ver}: {len(names)} keys, {total:,} bytes (MEMORY USAGE), of which the "
            f"selections (manifest and pieces) {selections:,}; {KEEP_VERSIONS} kept: {KEEP_VERSIONS * total / 2**20:.1f} MiB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="of the sample data (1.0: the real set's size)")
    args = ap.parse_args(argv)
    keys = Keys()
    with Workspace() as ws:
        ws.start_redis()
        r = redis.Redis.from_url(ws.redis_url)
        if REAL_DATA.is_dir():
            print(measure(ws, r, REAL_DATA, keys))
        # not ws.data_dir: for 1.0 it gives the real set when that is there
        sample = ws.dir / f"sample-{args.scale}"
        run([str(BIN / "banners"), "sample-data", str(sample), "--scale", str(args.scale)])
        print(measure(ws, r, sample, keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
