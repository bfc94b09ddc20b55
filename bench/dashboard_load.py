"""Campaign answers' latency while operators use the dashboard, and the time a new
version takes to reach every worker (issue 21).

    python bench/dashboard_load.py                       # the real set (else sample data)
    python bench/dashboard_load.py --data /tmp/big       # bench/big_catalog.py's 100k set

A private redis-server (unix socket), `banners load`, `banners serve` with 2 workers on
127.0.0.1 (loopback only).  Then, each phase --duration seconds, in rounds:

    alone      wrk (bench/visitors.lua: returning visitors, random campaigns)
    dashboard  the same wrk, and 6 clients hammering the operator pages with the admin
               token, each cycling over the list's pages (random page and quarter, a
               name filter now and then) and campaigns' pages (random campaign)

and prints each phase's campaign req/s, p50, p99, max and errors, and the dashboard's
pages/s.  The bar (issue 21): p99 with the dashboard within 2x of p99 alone.

Last, with wrk running, `banners load` publishes another version (another seed): prints
the load's time, the time from its exit until 200 answers in a row on new connections
all come from the new version, and wrk's max and p99 over the switch (a worker takes the
new version's snapshot in the first request that sees it).  Bounded: every phase and the
load have a deadline; nothing but 127.0.0.1 is asked.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import threading
import time
from pathlib import Path

from harness import ADMIN_TOKEN, BIN, Workspace, machine
from throughput import ensure_wrk, wrk_command


def parse(output: str) -> dict:
    """visitors.lua's BENCH line, raw (microseconds, with the max)."""
    line = next((x for x in output.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit("wrk output has no BENCH line:\n" + output[-1000:])
    return json.loads(line[6:])

HAMMERS = 6
BAR = 2.0


def campaigns_of(redis_url: str) -> int:
    import redis

    from banner_server.layout.pieces import manifest_of
    from banner_server.layout.keys import Keys

    r = redis.Redis.from_url(redis_url, socket_timeout=30)
    keys = Keys()
    ver = r.get(keys.current).decode()
    manifest = manifest_of(r.get(keys.selections(ver)))
    return max(info["campaigns"] for info in manifest["quarters"].values())


class Hammer(threading.Thread):
    """One operator client, as fast as the server answers, on one kept-alive connection."""

    def __init__(self, port: int, campaigns: int, stop: threading.Event, seed: int):
        super().__init__(daemon=True)
        self.port, self.campaigns, self.stop, self.rng = port, campaigns, stop, random.Random(seed)
        self.done, self.errors, self.bytes, self.busy = 0, 0, 0, 0

    def path(self) -> str:
        kind = self.rng.random()
        if kind < 0.5:
            pages = max(1, self.campaigns // 50)
            return f"/dashboard?quarter={self.rng.randint(1, 4)}&page={self.rng.randint(1, pages)}"
        if kind < 0.6:
            return f"/dashboard?q=Campaign+{self.rng.randint(1, self.campaigns)}"
        return f"/dashboard/campaigns/{self.rng.randint(1, self.campaigns)}"

    def run(self) -> None:
        conn = None
        while not self.stop.is_set():
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("GET", self.path(), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
                res = conn.getresponse()
                body = res.read()
                if res.status == 200:
                    self.done += 1
                    self.bytes += len(body)
                elif res.status == 503:  # the worker's rendering budget is spent: asked again
                    self.busy += 1
                else:
                    self.errors += 1
            except OSError:
                self.errors += 1
                conn = None


def wrk_phase(wrk: str, port: int, seconds: int, connections: int, campaigns: int, hammers: int) -> dict:
    env = {**os.environ, "BENCH_CAMPAIGNS": str(campaigns)}
    stop = threading.Event()
    clients = [Hammer(port, campaigns, stop, seed) for seed in range(hammers)]
    for c in clients:
        c.start()
    try:
        out = subprocess.run(wrk_command(wrk, port, seconds, connections, 1), capture_output=True, text=True,
                             env=env, timeout=seconds + 60, check=True).stdout
    finally:
        stop.set()
        for c in clients:
            c.join(60)
    result = parse(out)
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    result["dashboard_pages"] = sum(c.done for c in clients) / seconds
    result["dashboard_errors"] = sum(c.errors for c in clients)
    result["dashboard_busy"] = sum(c.busy for c in clients) / seconds
    result["dashboard_kb"] = sum(c.bytes for c in clients) / max(1, sum(c.done for c in clients)) / 1e3
    return result


def version_of_answer(port: int) -> str | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", f"/campaigns/{random.randint(1, 50)}", headers={"Accept": "application/json"})
        res = conn.getresponse()
        res.read()
        return res.getheader("X-Banners-Version")
    finally:
        conn.close()


def reach(ws: Workspace, wrk: str, port: int, data: Path, seconds: int, connections: int, campaigns: int) -> dict:
    """A load while wrk runs: its time, then until 200 fresh answers in a row are of the new version."""
    env = {**os.environ, "BENCH_CAMPAIGNS": str(campaigns)}
    load_wrk = subprocess.Popen(wrk_command(wrk, port, seconds, connections, 1), stdout=subprocess.PIPE,
                                text=True, env=env)
    time.sleep(min(2, seconds / 4))
    start = time.monotonic()
    p = subprocess.run([str(BIN / "banners"), "load", str(data), "--seed", "2", "-q", "--redis-url", ws.redis_url,
                        "--reject-log", str(ws.dir / "rejects2.jsonl")], capture_output=True, text=True,
                       timeout=900)
    loaded = time.monotonic()
    if p.returncode not in (0, 3):
        load_wrk.kill()
        raise SystemExit(f"second load failed: {p.stdout}{p.stderr}")
    new = p.stdout.split("published version ")[-1].split()[0] if "published version " in p.stdout else None
    streak, deadline, first = 0, loaded + 60, loaded
    while streak < 200 and time.monotonic() < deadline:
        asked = time.monotonic()
        if version_of_answer(port) == new:
            first = first if streak else asked
            streak += 1
        else:
            streak = 0
    reached = first  # the first answer of the streak: from then on, every one was new
    out, _ = load_wrk.communicate(timeout=seconds + 60)
    wrk_result = parse(out)
    return {"load_s": loaded - start, "version": new, "reach_s": reached - loaded,
            "reached": streak >= 200, "wrk_p99_ms": wrk_result["p99_us"] / 1e3,
            "wrk_max_ms": wrk_result["max_us"] / 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="data folder (default: the real set, else sample data)")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-reach", action="store_true", help="skip the second load")
    args = parser.parse_args()
    wrk = ensure_wrk()
    with Workspace() as ws:
        ws.start_redis()
        data = args.data or ws.data_dir()
        start = time.monotonic()
        ws.load(data)
        print(f"loaded {data} in {time.monotonic() - start:.1f} s")
        campaigns = campaigns_of(ws.redis_url)
        port = ws.start_server(workers=args.workers)
        ws.worker_pids(port, args.workers)
        print(f"{machine()}; {args.workers} workers, wrk {args.connections} connections, "
              f"{campaigns:,} campaigns a quarter, {HAMMERS} dashboard clients")
        phases: dict[str, list[dict]] = {"alone": [], "dashboard": []}
        for _ in range(args.rounds):
            for name, hammers in (("alone", 0), ("dashboard", HAMMERS)):
                r = wrk_phase(wrk, port, args.duration, args.connections, campaigns, hammers)
                phases[name].append(r)
                print(f"  {name:9} {r['rps']:7.0f} req/s  p50 {r['p50_us'] / 1e3:6.1f} ms  "
                      f"p99 {r['p99_us'] / 1e3:6.1f} ms  max {r['max_us'] / 1e3:7.1f} ms  errors {r['errors']}"
                      + (f"  dashboard {r['dashboard_pages']:.0f} pages/s ({r['dashboard_kb']:.0f} KB avg, "
                         f"{r['dashboard_busy']:.0f}/s busy 503s, {r['dashboard_errors']} errors)" if hammers else ""), flush=True)
        p99 = {name: statistics.median(r["p99_us"] for r in rs) / 1e3 for name, rs in phases.items()}
        ratio = p99["dashboard"] / p99["alone"]
        print(f"median p99: alone {p99['alone']:.1f} ms, with the dashboard {p99['dashboard']:.1f} ms: "
              f"x{ratio:.2f} ({'within' if ratio <= BAR else 'OVER'} the {BAR:g}x bar)")
        summary = {"machine": machine(), "data": str(data), "campaigns": campaigns, "phases": phases,
                   "p99_ms": p99, "ratio": ratio}
        if not args.no_reach:
            r = reach(ws, wrk, port, data, max(args.duration, 10), args.connections, campaigns)
            summary["reach"] = r
            print(f"new version {r['version']}: load {r['load_s']:.1f} s; every answer of it "
                  f"{r['reach_s'] * 1e3:.0f} ms after the load's exit (200 fresh answers in a row"
                  f"{'' if r['reached'] else ': NOT reached within 60 s'}); wrk over the switch: "
                  f"p99 {r['wrk_p99_ms']:.1f} ms, max {r['wrk_max_ms']:.1f} ms")
        print("BENCH " + json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
