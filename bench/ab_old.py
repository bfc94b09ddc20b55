"""A/B of the server against an earlier checkout of itself, in one run: both load the
same data into one private Redis (their key layouts do not collide), and wrk drives
them alternately.  Not part of `make bench`: it needs the other checkout.

OLD is run with its own .venv when it has one (its own meinheld build too: say which
in any figure); a bare source tree (`git archive COMMIT | tar -x -C DIR`) is run with
this venv and PYTHONPATH=OLD, so only the Python code differs.

    python bench/ab_old.py OLD_CHECKOUT [--duration 5] [--rounds 3] [--no-norecord]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import BIN, Workspace, children, proc_stats, stop
from throughput import LUA, degraded_answers, ensure_wrk, wrk_run

from banner_server.clients.embedded import free_port


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("old", type=Path)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--redis-timeout", type=float, metavar="SECONDS",
                    help="BANNERS_REDIS_TIMEOUT of both servers; on a loaded machine a longer one keeps them on "
                         "their Redis path (a snapshot answer skips the round trip and flatters its side)")
    ap.add_argument("--no-norecord", action="store_true", help="skip the new server without recording")
    args = ap.parse_args()
    if args.redis_timeout:
        os.environ["BANNERS_REDIS_TIMEOUT"] = str(args.redis_timeout)
    wrk = ensure_wrk()
    old_bin = args.old / ".venv" / "bin"
    old_env = {}
    if not (old_bin / "banners").exists():
        old_bin, old_env = BIN, {"PYTHONPATH": str(args.old.resolve())}
    print(f"old: {args.old} with {old_bin.parent.parent} ({meinheld_version(old_bin)}); "
          f"new: {BIN.parent.parent} ({meinheld_version(BIN)})")
    procs = []
    with Workspace() as ws:
        url = ws.start_redis()
        data = ws.data_dir(1.0)
        for bindir, cwd, extra_env in ((old_bin, args.old, old_env), (BIN, None, {})):
            subprocess.run([str(bindir / "banners"), "load", str(data), "--seed", "1", "-q", "--redis-url", url],
                           cwd=cwd, check=False, capture_output=True, env={**os.environ, **extra_env})
        servers = {}
        apps = [("old", old_bin, args.old, old_env), ("new", BIN, None, {})]
        if not args.no_norecord:
            apps.append(("new-norecord", BIN, None, {"BANNERS_RECORD_IMPRESSIONS": "0"}))
        for name, bindir, cwd, extra_env in apps:
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
                before = degraded_answers(port)
                a = proc_stats(pids)
                r = wrk_run(wrk, port, args.duration, 64, 2)
                b = proc_stats(pids)
                r["degraded"] = int(degraded_answers(port) - before)
                r["cpu_us"] = (b["user"] + b["system"] - a["user"] - a["system"]) / max(r["requests"], 1) * 1e6
                results[name].append(r)
        for p in procs:
            stop(p)
    med = {}
    print(f"{'':14} {'req/s':>8} {'worker CPU us/req':>18} {'p99 ms':>7} {'errors':>6} {'snapshot answers':>16}   (medians of {args.rounds})")
    for name, rs in results.items():
        rps = statistics.median(r["rps"] for r in rs)
        cpu = statistics.median(r["cpu_us"] for r in rs)
        p99 = statistics.median(r["p99_ms"] for r in rs)
        med[name] = (rps, cpu)
        print(f"{name:14} {rps:8.0f} {cpu:18.0f} {p99:7.1f} {sum(r['errors'] for r in rs):6d} {sum(r['degraded'] for r in rs):16d}")
    print(f"new/old: {med['new'][0] / med['old'][0]:.2f} by req/s, {med['old'][1] / med['new'][1]:.2f} by worker CPU "
          "per request (old's over new's)")
    return 0


def meinheld_version(bindir: Path) -> str:
    out = subprocess.run([str(bindir / "python"), "-c", "from importlib.metadata import version; "
                          "print(version('meinheld'))"], capture_output=True, text=True)
    return "meinheld " + (out.stdout.strip() or "?")


if __name__ == "__main__":
    sys.exit(main())
