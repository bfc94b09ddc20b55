"""Soak: does a worker's memory stay flat under hours of traffic?  `banners serve`
(4 workers, the real data set or sample data, a private Redis on a unix socket) under
wrk on loopback for --duration seconds (default 600), bounded: wrk stops by itself.
Half the requests come from returning visitors, half from visitors never seen before
(bench/soak.lua), so per-visitor memory meets new ids all along.  Every --every
seconds (default 30) it samples each worker's RSS (/proc/PID/status VmRSS), Redis'
used_memory, and the answers so far.  Prints the table and, after the warm-up
(--warmup, default 180 s: a worker's memory of its visitors' last banners, for
answers without Redis, fills to its bound of 100,000 in about two minutes here, then
is emptied and refilled: a saw-tooth), each worker's highest RSS in the first and
in the second half of the rest: flat means the second no higher than the first plus
a little.  Writes bench/results/soak.json.

    python bench/soak.py [--duration 600] [--every 30] [--warmup 180] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

from harness import RESULTS_DIR, Workspace, machine
from throughput import degraded_answers, ensure_wrk, parse

LUA = Path(__file__).with_name("soak.lua")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def steady_halves(samples: list[dict], warmup: int) -> dict:
    """{worker: (highest RSS in MiB in the first half of the samples after `warmup`,
    the same in the second half)}."""
    steady = [s for s in samples if s["t"] >= warmup] or samples
    half = max(len(steady) // 2, 1)
    first, second = steady[:half], steady[half:] or steady[-1:]
    return {pid: (max(s["rss_kib"][pid] for s in first) / 1024, max(s["rss_kib"][pid] for s in second) / 1024)
            for pid in steady[0]["rss_kib"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=600, help="seconds of load")
    ap.add_argument("--every", type=int, default=30, help="seconds between samples")
    ap.add_argument("--warmup", type=int, default=180, help="seconds before the reference sample")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--smoke", action="store_true", help="10 s, a sample every 2 s, small data")
    args = ap.parse_args(argv)
    if args.smoke:
        args.duration, args.every, args.warmup = 10, 2, 2
    wrk = ensure_wrk()
    samples = []
    with Workspace() as ws:
        ws.start_redis()
        ws.load(ws.data_dir(0.02 if args.smoke else 1.0))
        r = redis.Redis.from_url(ws.redis_url)
        port = ws.start_server(args.workers)
        workers = ws.worker_pids(port, args.workers)
        cmd = [wrk, "-t", "2", "-c", str(args.connections), "-d", f"{args.duration}s", "--timeout", "2s",
               "-s", str(LUA), f"http://127.0.0.1:{port}"]
        start = time.monotonic()
        load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            while load.poll() is None:
                elapsed = time.monotonic() - start
                samples.append({
                    "t": round(elapsed),
                    "rss_kib": {pid: rss_kib(pid) for pid in workers},
                    "redis_used_memory": int(r.info("memory")["used_memory"]),
                    "redis_keys": int(r.dbsize()),
                    "snapshot_answers": int(degraded_answers(port)),
                })
                s = samples[-1]
                print(f"{s['t']:5d} s  workers' RSS MiB " + " ".join(f"{v / 1024:6.1f}" for v in s["rss_kib"].values())
                      + f"   Redis {s['redis_used_memory'] / 2**20:7.1f} MiB, {s['redis_keys']} keys", flush=True)
                next_at = start + (len(samples)) * args.every
                while load.poll() is None and time.monotonic() < next_at:
                    time.sleep(0.2)
            out, err = load.communicate()
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        final = {pid: rss_kib(pid) for pid in workers}
        result = parse(out)
    halves = steady_halves(samples, args.warmup)
    alive = all(final[pid] for pid in workers)
    print(f"{result['requests']:,} requests in {args.duration} s ({result['rps']:.0f} req/s), "
          f"{result['errors']} errors, p99 {result['p99_ms']:.1f} ms, snapshot answers {samples[-1]['snapshot_answers']}")
    print(f"workers' highest RSS after {args.warmup} s, first half / second half (MiB): "
          + ", ".join(f"{a:.1f} / {b:.1f} ({b - a:+.1f})" for a, b in halves.values())
          + ("" if alive else "   (a worker exited: a restart would hide growth)"))
    if not args.smoke:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / "soak.json").write_text(json.dumps(
            {"machine": machine(), "args": vars(args), "wrk": result, "samples": samples,
             "final_rss_kib": final, "highest_rss_mib_halves_after_warmup": halves,
             "when": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
