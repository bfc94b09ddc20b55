"""A/B of the server against an earlier checkout of itself, in one run: both load the
same data into one private Redis (their key layouts do not collide), and wrk drives
them alternately.  Not part of `make bench`: it needs the other checkout installed.

    python bench/ab_old.py OLD_CHECKOUT [--duration 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from harness import BIN, Workspace, children, proc_stats, stop
from throughput import LUA, ensure_wrk, wrk_run

from banner_server.clients.embedded import free_port


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("old", type=Path)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    wrk = ensure_wrk()
    old_bin = args.old / ".venv" / "bin"
    procs = []
    with Workspace() as ws:
        url = ws.start_redis()
        data = ws.data_dir(1.0)
        for bindir, cwd in ((old_bin, args.old), (BIN, None)):
            subprocess.run([str(bindir / "banners"), "load", str(data), "--seed", "1", "-q", "--redis-url", url],
                           cwd=cwd, check=False, capture_output=True)
        servers = {}
        for name, bindir, cwd, extra_env in (("old", old_bin, args.old, {}), ("new", BIN, None, {}),
                                             ("new-norecord", BIN, None, {"BANNERS_RECORD_IMPRESSIONS": "0"})):
            port = free_port()
            env = {**os.environ, "BANNERS_STATE_DIR": str(ws.dir / name), **extra_env}
            p = subprocess.Popen([str(bindir / "banners"), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "4",
                                  "--redis-url", url], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
            procs.append(p)
            servers[name] = (port, p)
        time.sleep(6)
        for name, (port, _) in servers.items():
            wrk_run(wrk, port, 1, 64, 2)
        results = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, (port, p) in servers.items():
                pids = children(p.pid)
                a = proc_stats(pids)
                r = wrk_run(wrk, port, args.duration, 64, 2)
                b = proc_stats(pids)
                r["cpu_us"] = (b["user"] + b["system"] - a["user"] - a["system"]) / max(r["requests"], 1) * 1e6
                results[name].append(r)
        for p in procs:
            stop(p)
    print(f"{'':14} {'req/s':>8} {'worker CPU us/req':>18} {'errors':>6}")
    for name, rs in results.items():
        rps = sorted(r["rps"] for r in rs)[len(rs) // 2]
        cpu = sorted(r["cpu_us"] for r in rs)[len(rs) // 2]
        print(f"{name:14} {rps:8.0f} {cpu:18.0f} {sum(r['errors'] for r in rs):6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
