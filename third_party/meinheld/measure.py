"""Measures meinheld builds side by side on the request path (the numbers in build.py).

    python third_party/meinheld/measure.py [--before DIR] [--also NAME=DIR] [--rounds N]
                                           [--seconds 10] [--strace]

Starts bench/reference_app.py on gunicorn + meinheld (the project's gunicorn.conf.py,
2 workers) once per build: the installed one ("after") and, with --before, a build
installed with `pip install --target DIR` (put first on PYTHONPATH).  Each gets a
bounded `wrk -t2 -c64 -d<seconds>s` run: req/s, and the workers' CPU per request from
/proc/<pid>/stat (utime + stime deltas).  --strace instead attaches
`strace -f -c -e trace=epoll_ctl,mmap,munmap` to one worker under a short wrk load and
prints the syscall counts (and how many epoll_ctl calls failed).  Local only: 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(pythonpath: str | None, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    p = subprocess.Popen([str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "-w", "2",
                          "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT / "bench"), "reference_app:application"],
                         cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200 and len(workers(p)) >= 2:
                    return p, port
        except OSError:
            time.sleep(0.2)
    stop(p)
    raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")


def workers(p: subprocess.Popen) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(15)


def wrk(port: int, seconds: int) -> tuple[float, int]:
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}/campaigns/7"],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw errors:\n{out}")
    return rps, total


def bench(name: str, pythonpath: str | None, seconds: int, tmp: Path) -> None:
    p, port = start(pythonpath, tmp / f"{name}.log")
    try:
        pids = workers(p)
        wrk(port, 2)  # warm-up
        before = {pid: cpu_ticks(pid) for pid in pids}
        rps, total = wrk(port, seconds)
        ticks = sum(cpu_ticks(pid) - before[pid] for pid in pids)
        print(f"{name:7s} {rps:10.0f} req/s  {ticks / TICK / total * 1e6:6.1f} us worker CPU/request"
              f"  ({total} requests)", flush=True)
    finally:
        stop(p)


def trace(name: str, pythonpath: str | None, tmp: Path) -> None:
    p, port = start(pythonpath, tmp / f"{name}.log")
    try:
        pid = workers(p)[0]
        out = tmp / f"{name}.strace"
        s = subprocess.Popen(["strace", "-f", "-c", "-o", str(out), "-e", "trace=epoll_ctl,mmap,munmap",
                              "-p", str(pid)], stderr=subprocess.DEVNULL)
        time.sleep(1)
        _, total = wrk(port, 3)
        s.send_signal(signal.SIGINT)
        s.wait(15)
        print(f"--- {name}: worker {pid}, {total} requests on 2 workers (about half on this one)")
        print(out.read_text(), flush=True)
    finally:
        stop(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", help="folder with the other build (pip install --target)")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=DIR",
                    help="another build to measure (pip install --target DIR), after --before")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole series (noisy machines)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--strace", action="store_true")
    args = ap.parse_args()
    runs = ([("before", args.before)] if args.before else [])
    runs += [tuple(a.split("=", 1)) for a in args.also] + [("after", None)]
    with tempfile.TemporaryDirectory(prefix="mh-measure-") as tmp:
        for name, path in runs * args.rounds:
            if args.strace:
                trace(name, path, Path(tmp))
            else:
                bench(name, path, args.seconds, Path(tmp))


if __name__ == "__main__":
    main()
