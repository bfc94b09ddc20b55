"""`make bench-loader`: whole-command `banners load` time and peak memory vs. the bare
polars read of the same files; on the real set and on a 20x sample set.

Also checks that memory does not grow with duplicates (the 20x set copied in again)
or with the number of files (the same rows split into many files).

    python bench/loader_bench.py [--repeat 3] [--scale 20] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import BIN, REAL_DATA, RESULTS_DIR, Workspace, machine

BARE = """
import sys, time, glob, polars as pl
t = time.perf_counter()
files = sorted(glob.glob(sys.argv[1] + "/**/*.csv", recursive=True))
rows = sum(pl.read_csv(f).height for f in files)
print(time.perf_counter() - t, rows)
"""


def peak_of(cmd: list[str]) -> tuple[float, float, str]:
    # ru_maxrss of RUSAGE_CHILDREN is the max over all children so far: run each
    # measured command in its own wrapper process to get its own peak.
    wrapper = [sys.executable, "-c",
               "import resource,subprocess,sys,time;t=time.perf_counter();"
               "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
               "w=time.perf_counter()-t;"
               "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024, p.returncode);"
               "sys.stderr.write(p.stderr[-1500:]);sys.stdout.write(p.stdout)", *cmd]
    p = subprocess.run(wrapper, capture_output=True, text=True)
    first, _, rest = p.stdout.partition("\n")
    wall, peak, rc = first.split()
    if int(rc) not in (0, 3):
        raise SystemExit(f"{cmd[:3]} failed ({rc}): {p.stderr}")
    return float(wall), float(peak), rest


def bench(ws: Workspace, name: str, data: Path, repeat: int) -> dict:
    load = [str(BIN / "banners"), "load", str(data), "--seed", "1", "-q", "--redis-url", ws.redis_url,
            "--reject-log", str(ws.dir / "rejects.jsonl")]
    bare = [sys.executable, "-c", BARE, str(data)]
    loads = [peak_of(load) for _ in range(repeat)]
    bares = [peak_of(bare) for _ in range(repeat)]
    bare_read = statistics.median(float(b[2].split()[0]) for b in bares)
    rows = int(bares[0][2].split()[1])
    res = {
        "data": name,
        "rows": rows,
        "files": sum(1 for _ in data.rglob("*.csv")),
        "load_s": statistics.median(w for w, _, _ in loads),
        "load_peak_mib": max(p for _, p, _ in loads),
        "bare_read_s": bare_read,
        "bare_process_s": statistics.median(w for w, _, _ in bares),
        "bare_peak_mib": max(p for _, p, _ in bares),
    }
    res["ratio_to_bare_process"] = res["load_s"] / res["bare_process_s"]
    print(f"{name:28} {rows:>10,} rows {res['files']:>4} files  load {res['load_s']:.2f}s "
          f"(peak {res['load_peak_mib']:.0f} MiB)  bare polars read {res['bare_read_s']:.2f}s in-process, "
          f"{res['bare_process_s']:.2f}s as a process (peak {res['bare_peak_mib']:.0f} MiB)  "
          f"ratio {res['ratio_to_bare_process']:.2f}", flush=True)
    return res


def split_files(src: Path, out: Path, parts: int) -> Path:
    """The same rows in `parts` files per original file (headers repeated)."""
    for f in sorted(src.rglob("*.csv")):
        lines = f.read_text().splitlines(keepends=True)
        header, body = lines[0], lines[1:]
        size = max(1, len(body) // parts + 1)
        dest = out / f.relative_to(src).parent
        dest.mkdir(parents=True, exist_ok=True)
        for i in range(0, len(body), size):
            (dest / f"{f.stem}_part{i // size:03d}.csv").write_text(header + "".join(body[i:i + size]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--smoke", action="store_true", help="tiny data, one run: checks the script works")
    args = ap.parse_args(argv)
    if args.smoke:
        args.repeat, args.scale = 1, 0.02
    results = []
    with Workspace() as ws:
        ws.start_redis()
        if REAL_DATA.is_dir() and not args.smoke:
            results.append(bench(ws, "real set", REAL_DATA, args.repeat))
        big = ws.data_dir(args.scale)
        results.append(bench(ws, f"sample x{args.scale:g}", big, args.repeat))
        dup = ws.dir / "dup"
        shutil.copytree(big, dup / "a")
        shutil.copytree(big, dup / "b")  # every file again: all duplicate_file
        results.append(bench(ws, f"sample x{args.scale:g}, twice", dup, args.repeat))
        shutil.rmtree(dup)
        many = split_files(big, ws.dir / "many", 25)
        results.append(bench(ws, f"sample x{args.scale:g}, 25x files", many, args.repeat))
    if not args.smoke:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / "loader.json").write_text(json.dumps(
            {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"), "results": results}, indent=2) + "\n")
    print(f"machine: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
