"""`make bench`: banner server vs. a no-logic reference on the same stack, with wrk.

64 connections of returning visitors (cookies) asking random campaigns, alternating
reference and server runs so both see the same machine state.  Prints req/s, p50,
p99, errors and the ratio server/reference; writes bench/results/throughput.json.

    python bench/throughput.py [--duration 10] [--rounds 2] [--connections 64] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import RESULTS_DIR as RESULTS, Workspace, machine

LUA = Path(__file__).with_name("visitors.lua")


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    print("wrk not found: installing Debian's package (apt-get install wrk)", file=sys.stderr)
    cmd = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True)
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            raise SystemExit("could not install wrk; install it (apt-get install wrk) and run again")
    return shutil.which("wrk")


def parse(output: str) -> dict:
    m = re.search(r"^BENCH (\{.*\})$", output, re.M)
    if not m:
        raise ValueError("wrk output has no BENCH line:\n" + output[-1000:])
    raw = json.loads(m.group(1))
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": errors,
        "requests": raw["requests"],
    }


def wrk_run(wrk: str, port: int, seconds: int, connections: int, threads: int) -> dict:
    out = subprocess.run(
        [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "2s",
         "-s", str(LUA), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True).stdout
    return parse(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per run")
    ap.add_argument("--rounds", type=int, default=2, help="reference/server alternations")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1),
                    help="gunicorn workers of both servers [default: two per core, as banners serve]")
    ap.add_argument("--smoke", action="store_true", help="1-second runs, small data: checks the script works")
    args = ap.parse_args(argv)
    if args.smoke:
        args.duration, args.rounds = 1, 1
    wrk = ensure_wrk()
    with Workspace() as ws:
        ws.start_redis()
        ws.load(ws.data_dir(0.02 if args.smoke else 1.0))
        server = ws.start_server(args.workers)
        reference = ws.start_reference(args.workers)
        wrk_run(wrk, server, 1, args.connections, args.threads)  # warm-up both
        wrk_run(wrk, reference, 1, args.connections, args.threads)
        runs = {"reference": [], "server": []}
        for _ in range(args.rounds):
            for name, port in (("reference", reference), ("server", server)):
                runs[name].append(wrk_run(wrk, port, args.duration, args.connections, args.threads))
                time.sleep(0.5)
    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "rps": statistics.median(r["rps"] for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": max(r["p99_ms"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
            "requests": sum(r["requests"] for r in rs),
        }
    ratio = summary["server"]["rps"] / summary["reference"]["rps"]
    print(f"{'':10} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for name in ("reference", "server"):
        s = summary[name]
        print(f"{name:10} {s['rps']:9.0f} {s['p50_ms']:7.2f} {s['p99_ms']:7.2f} {s['errors']:6d}")
    print(f"ratio server/reference: {ratio:.2f}   ({machine()}; {args.connections} connections, "
          f"{args.workers} workers, {args.duration}s x {args.rounds})")
    ok = ratio >= 0.5 and summary["server"]["errors"] == 0 and summary["server"]["p99_ms"] <= 20
    print("bar (ratio >= 0.5, 0 errors, p99 <= 20 ms):", "met" if ok else "NOT met")
    if not args.smoke:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "throughput.json").write_text(json.dumps(
            {"machine": machine(), "args": vars(args), "summary": summary, "ratio": ratio, "runs": runs,
             "when": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
