"""Where a worker's time goes under load: py-spy and perf on one worker while wrk runs.

Starts a private Redis with the real data set (or sample data), one app of
`make bench` (default the banner server; 4 workers), drives it as `make bench` does
(wrk, 64 connections, bench/visitors.lua) and, for --duration seconds, samples ONE
worker with three samplers at once:

- py-spy, Python frames: prints the top functions by self time (the sampled frame
  itself), by total time (anywhere on the stack), by line, and the same outside the
  Redis round trip (what is left is the app's own Python).  py-spy keeps a sample
  when the OS says the worker is running OR RUNNABLE: on a busy machine a worker
  that waits for a CPU, typically right after its send to Redis woke Redis up,
  counts too (--idle keeps the sleeping samples as well).  Time in C (meinheld's
  loop, hiredis, the kernel) shows as self time of the Python frame that called it,
  e.g. `run (meinheld/gmeinheld.py)` for meinheld's loop; py-spy's --native cannot
  follow meinheld's greenlets ("Failed to merge native and python frames").
- perf (when installed): on-CPU time only, by where the CPU was: the interpreter,
  meinheld's C server, libc, hiredis, and the kernel by the system call that entered
  it (send/recv to Redis, read/writev to the client, poll, mmap...).  Converted to
  us per request with the workers' CPU per request (/proc, over the whole load).
- with --syscalls, then strace -c: system calls per answer (own load, 2 s).

Writes to bench/results/ (with --smoke, to a temporary folder removed at the end):

    profile_<app>.svg        py-spy's flame graph
    profile_<app>.txt        py-spy's samples as collapsed stacks (its raw format)
    profile_<app>_perf.txt   perf's samples as collapsed stacks
    profile_<app>.json       everything printed

    python bench/profile_load.py [--app server|floor|script|ceiling] [--duration 10] [--syscalls]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from harness import RESULTS_DIR, Workspace, machine, proc_stats
from throughput import APPS, MODULES, ensure_wrk, parse, wrk_command

PYSPY = Path(sys.executable).parent / "py-spy"
_LINE = re.compile(r":\d+\)$")
_FILE = re.compile(r"\((.*?)(?::\d+)?\)$")
# The Redis round trip of the lean client (send, wait, receive): what is left outside
# it is the app's own Python.
ROUND_TRIP = ("FastRedis._send (", "FastRedis.roundtrip (")


def top_frames(collapsed: str) -> dict:
    """Self and total sample counts by function and by line, from py-spy's raw
    output (one `frame;frame;...;leaf COUNT` line per distinct stack)."""
    self_fn, total_fn, self_line, outside_file, outside_fn = Counter(), Counter(), Counter(), Counter(), Counter()
    samples = 0
    for row in collapsed.splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        samples += n
        self_line[frames[-1]] += n
        self_fn[_LINE.sub(")", frames[-1])] += n
        for fn in {_LINE.sub(")", f) for f in frames}:  # once per stack, even when recursive
            total_fn[fn] += n
        if not any(f.startswith(ROUND_TRIP) for f in frames):
            outside_fn[_LINE.sub(")", frames[-1])] += n
            m = _FILE.search(frames[-1])
            outside_file[m.group(1) if m else frames[-1]] += n
    return {"samples": samples, "self": self_fn.most_common(), "total": total_fn.most_common(),
            "self_by_line": self_line.most_common(), "outside_redis_self": outside_fn.most_common(),
            "outside_redis_by_file": outside_file.most_common()}


def print_top(tops: dict, n: int) -> None:
    samples = max(tops["samples"], 1)
    for title, key in (("self time (the sampled frame itself)", "self"),
                       ("total time (anywhere on the stack)", "total"),
                       ("self time by line", "self_by_line"),
                       ("self time outside the Redis round trip", "outside_redis_self"),
                       ("self time outside the Redis round trip, by file", "outside_redis_by_file")):
        print(f"\ntop {n} by {title}, of {tops['samples']} samples:")
        for frame, count in tops[key][:n]:
            print(f"  {100 * count / samples:5.1f}%  {count:6d}  {frame}")


def py_spy(pid: int, fmt: str, out: Path, args) -> subprocess.Popen:
    cmd = [str(PYSPY), "record", "--pid", str(pid), "--duration", str(args.duration), "--rate", str(args.rate),
           "--format", fmt, "--output", str(out)]
    if args.nonblocking:
        cmd.append("--nonblocking")
    if args.idle:
        cmd.append("--idle")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def perf_record(pid: int, out: Path, args) -> subprocess.Popen:
    return subprocess.Popen(["perf", "record", "-F", str(args.perf_rate), "-g", "-p", str(pid), "-o", str(out),
                             "--", "sleep", str(args.duration)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


_SYSCALL = re.compile(r"^(?:__GI_|__libc_|__)*")


def perf_breakdown(data: Path) -> dict:
    """The worker's on-CPU samples by where the CPU was (perf counts only running
    time, unlike py-spy): the interpreter, meinheld's C loop, hiredis..., and the
    kernel by the system call that entered it (send/recv to Redis, writev/read to
    the client, poll, epoll_wait) or by interrupts and preemption."""
    text = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,sym,dso"],
                          capture_output=True, text=True, check=True).stdout
    areas, symbols, stacks = Counter(), Counter(), Counter()
    samples = 0
    for block in text.split("\n\n"):
        frames = []
        for line in block.splitlines():
            m = re.match(r"\s*[0-9a-f]+ (.*) \((.*)\)$", line)
            if m:
                sym, dso = m.group(1), Path(m.group(2)).name
                frames.append((re.sub(r"\+0x[0-9a-f]+$", "", sym), dso))
        if not frames:
            continue
        samples += 1
        stacks[";".join(f"{s} ({d})" for s, d in reversed(frames))] += 1
        sym, dso = frames[0]
        symbols[f"{sym} ({dso})"] += 1
        if dso == "[kernel.kallsyms]":
            user = next(((s, d) for s, d in frames if d != "[kernel.kallsyms]"), None)
            if user and user[1].startswith("libc") and user[0] != "[unknown]":
                areas[f"kernel, in {_SYSCALL.sub('', user[0])}()"] += 1
            else:
                areas["kernel, not in a system call (page faults, interrupts, preemption)"] += 1
        else:
            areas[AREAS.get(dso.split(".")[0].lstrip("_"), dso)] += 1
    return {"samples": samples, "areas": areas.most_common(), "symbols": symbols.most_common(), "stacks": stacks}


AREAS = {"libpython3": "Python interpreter (all Python code)", "server": "meinheld's C server (HTTP parsing, loop)",
         "greenlet": "greenlet", "hiredis": "hiredis reader", "libc": "libc (memory, copies)",
         "socket": "_socket module"}


def strace_counts(pid: int, seconds: int, out: Path) -> dict:
    """System calls of the worker per answer (meinheld writes each answer with one
    writev), from `strace -c`."""
    subprocess.run(["timeout", "-s", "INT", str(seconds), "strace", "-c", "-p", str(pid), "-o", str(out)],
                   capture_output=True, text=True)
    counts, errors = {}, {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            counts[parts[-1]] = int(parts[3])
            errors[parts[-1]] = int(parts[4]) if len(parts) == 6 else 0
    answers = max(counts.get("writev", 0), 1)
    return {"answers": counts.get("writev", 0),
            "per_answer": {k: round(v / answers, 2) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])},
            "failed_per_answer": {k: round(v / answers, 2) for k, v in errors.items() if v}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", choices=APPS, default="server")
    ap.add_argument("--duration", type=int, default=10, help="seconds of sampling")
    ap.add_argument("--rate", type=int, default=100, help="py-spy samples per second (of each of its two samplers)")
    ap.add_argument("--idle", action="store_true", help="py-spy: count samples where the worker waits, too")
    ap.add_argument("--nonblocking", action="store_true",
                    help="py-spy: never pause the worker to sample it; py-spy then cannot ask the OS whether "
                         "the worker runs and guesses from the frame")
    ap.add_argument("--perf-rate", type=int, default=999, help="perf samples per second of the worker's CPU time")
    ap.add_argument("--no-perf", dest="perf", action="store_false",
                    help="skip the perf sampler (on-CPU time by interpreter / C / kernel system call)")
    ap.add_argument("--syscalls", action="store_true",
                    help="then count the worker's system calls per answer with strace (2 s, own load)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--smoke", action="store_true", help="small data, 1-second profile: checks the script works")
    args = ap.parse_args(argv)
    if args.smoke:
        args.duration = 1
    if args.perf and not shutil.which("perf"):
        print("perf not found (apt-get install linux-perf): py-spy only", file=sys.stderr)
        args.perf = False
    wrk = ensure_wrk()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    # --smoke checks the tool: its files go to a temporary folder, not over real results.
    stem = (Path(tempfile.mkdtemp(prefix="banners-profile-")) if args.smoke else RESULTS_DIR) / f"profile_{args.app}"
    with Workspace() as ws:
        ws.start_redis()
        ws.load(ws.data_dir(0.02 if args.smoke else 1.0))
        if args.app == "server":
            port = ws.start_server(args.workers)
        else:
            port = ws.start_app(MODULES[args.app], args.workers)
        workers = ws.worker_pids(port, args.workers)
        pid = workers[0]
        # Load for a second before sampling and a second after it, so that every sample
        # is of a worker under load.
        before = proc_stats(workers)
        load = subprocess.Popen(wrk_command(wrk, port, args.duration + 2, args.connections, args.threads),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1)
        samplers = {"py-spy raw": py_spy(pid, "raw", stem.with_suffix(".txt"), args),
                    "py-spy flamegraph": py_spy(pid, "flamegraph", stem.with_suffix(".svg"), args)}
        if args.perf:
            samplers["perf"] = perf_record(pid, ws.dir / "perf.data", args)
        outputs = {name: p.communicate(timeout=args.duration + 60)[0] for name, p in samplers.items()}
        wrk_out, wrk_err = load.communicate(timeout=args.duration + 60)
        after = proc_stats(workers)
        for name, p in samplers.items():
            if p.returncode != 0:
                raise SystemExit(f"{name} could not sample worker {pid}: {outputs[name][-2000:]}\n"
                                 "Without ptrace rights (root or CAP_SYS_PTRACE), profile in-process instead: "
                                 "python bench/profile_request.py --profile")
        cpu = perf_breakdown(ws.dir / "perf.data") if args.perf else None
        syscalls = None
        if args.syscalls:
            # Its own short load: strace slows the worker down many times over, so it
            # must not overlap the samplers' window or the CPU figures.
            load = subprocess.Popen(wrk_command(wrk, port, 4, args.connections, args.threads),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(1)
            syscalls = strace_counts(pid, 2, ws.dir / "strace.txt")
            load.communicate(timeout=60)
    if cpu:
        stem.with_name(stem.name + "_perf.txt").write_text("".join(f"{k} {v}\n" for k, v in cpu["stacks"].items()))
    result = parse(wrk_out)
    n = max(result["requests"], 1)
    per_req = {k: (after[k] - before[k]) / n for k in after}
    cpu_us = (per_req["user"] + per_req["system"]) * 1e6
    tops = top_frames(stem.with_suffix(".txt").read_text())
    print(f"{args.app}: {result['rps']:.0f} req/s under wrk ({args.connections} connections, {args.workers} workers, "
          f"{result['errors']} errors) while worker {pid} was sampled for {args.duration}s at {args.rate}/s; "
          f"{machine()}")
    print(f"workers' CPU per request: {cpu_us:.1f} us ({per_req['user'] * 1e6:.1f} user, "
          f"{per_req['system'] * 1e6:.1f} system); context switches per request: "
          f"{per_req['voluntary_ctxt_switches']:.2f} voluntary, {per_req['nonvoluntary_ctxt_switches']:.2f} preempted")
    if cpu:
        print(f"\nperf, on-CPU samples of worker {pid} by where the CPU was ({cpu['samples']} samples; "
              f"us per request = share x the workers' CPU per request):")
        for area, count in cpu["areas"]:
            share = count / max(cpu["samples"], 1)
            print(f"  {100 * share:5.1f}%  {share * cpu_us:6.1f} us  {area}")
        print(f"\nperf, top {args.top} symbols by self time:")
        for sym, count in cpu["symbols"][:args.top]:
            print(f"  {100 * count / max(cpu['samples'], 1):5.1f}%  {sym}")
    if syscalls:
        print(f"\nsystem calls per answer of worker {pid} (strace -c over {syscalls['answers']} answers): "
              + ", ".join(f"{k} {v:g}" for k, v in syscalls["per_answer"].items())
              + (f"; failing: " + ", ".join(f"{k} {v:g}" for k, v in syscalls["failed_per_answer"].items())
                 if syscalls["failed_per_answer"] else ""))
    print(f"\npy-spy, Python frames of worker {pid} "
          f"({'running or waiting' if args.idle else 'running or runnable: a worker preempted while waiting for a CPU counts'}"
          f"{', non-blocking' if args.nonblocking else ''}):")
    print_top(tops, args.top)
    print(f"\nwrote {stem.with_suffix('.svg')}, {stem.with_suffix('.txt')}, {stem.with_suffix('.json')}"
          + (f", {stem.with_name(stem.name + '_perf.txt')} (perf's stacks, collapsed)" if cpu else ""))
    stem.with_suffix(".json").write_text(json.dumps(
        {"app": args.app, "machine": machine(), "args": vars(args), "wrk": result, "worker_pid": pid,
         "workers_per_request": per_req, "syscalls": syscalls, "perf": cpu and {"samples": cpu["samples"], "areas": cpu["areas"],
                                                           "symbols": cpu["symbols"][:50]},
         "py_spy": {"samples": tops["samples"], "top_self": tops["self"][:50], "top_total": tops["total"][:50],
                    "top_self_by_line": tops["self_by_line"][:50],
                    "outside_redis_self": tops["outside_redis_self"][:50],
                    "outside_redis_by_file": tops["outside_redis_by_file"][:50]},
         "when": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2) + "\n")
    if args.smoke:
        shutil.rmtree(stem.parent, ignore_errors=True)
        print("(--smoke: those files are removed again)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
