"""Runs `banners load DATA_DIR` when the data folder has changed and stopped changing.

    load_on_change.py DATA_DIR [-- LOAD_OPTIONS...]            one load, then exit
    load_on_change.py --watch 10 DATA_DIR [-- LOAD_OPTIONS...]  load now, then at every change

The systemd path unit starts the first form when files land in the folder; the
compose file's load service runs the second.  Both wait until the folder has been
quiet for --settle seconds before loading, so a drop of a dozen files arriving one
by one makes one load, not a dozen half-loads; and both load again when files changed
while a load was reading them.  A change is any *.csv under DATA_DIR added, removed,
resized or touched (what `banners load` reads).

Exit status (one-shot): the last load's; 0 when there is nothing to load.  The watch
loop only ends on a usage error (2) or a signal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

EXIT_USAGE = 2
PUBLISHED = (0, 3)  # 3: published, some input was rejected as invalid
MAX_BACKOFF = 300.0


def log(message: str) -> None:
    print(f"load-on-change: {message}", flush=True)


def signature(data_dir: Path) -> tuple:
    """What the folder holds, as far as a load can tell: every *.csv with its size and mtime."""
    found = []
    for path in sorted(data_dir.rglob("*.csv")):
        try:
            st = path.stat()
        except OSError:  # removed while we looked: the next look sees it gone
            continue
        if path.is_file():
            found.append((str(path.relative_to(data_dir)), st.st_size, st.st_mtime_ns))
    return tuple(found)


def settled(data_dir: Path, settle: float, seen: tuple | None = None) -> tuple:
    """The folder's signature once two looks `settle` seconds apart agree."""
    seen = signature(data_dir) if seen is None else seen
    while True:
        time.sleep(settle)
        now = signature(data_dir)
        if now == seen:
            return now
        seen = now


def banners_command() -> str:
    """`banners` of the same installation as this Python (a venv's bin), else the PATH's."""
    beside = Path(sys.executable).parent / "banners"
    return str(beside) if beside.is_file() else (shutil.which("banners") or "banners")


SHOWN = 40  # lines of a failed load's output shown; a traceback is hundreds


def load(data_dir: Path, files: tuple, load_args: list[str], quiet_failure: str | None = None) -> tuple[int, str]:
    """(exit status, reason) of one `banners load`.  Its output is passed on, except
    when it fails for quiet_failure again (the same files, the same reason): a load
    failing every few seconds says why once, not 272 log lines in 25 s."""
    log(f"loading {data_dir} ({len(files)} files)")
    started = time.monotonic()
    proc = subprocess.run([banners_command(), "load", str(data_dir), *load_args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    rc, lines = proc.returncode, proc.stdout.splitlines()
    reason = next((line.strip() for line in reversed(lines) if line.strip()), f"exit status {rc}")[:300]
    if rc in PUBLISHED or rc == EXIT_USAGE or reason != quiet_failure:
        if len(lines) > SHOWN:
            print(f"... ({len(lines) - SHOWN} lines before these left out)")
        for line in lines[-SHOWN:]:
            print(line)
        log(f"banners load exited {rc} after {time.monotonic() - started:.1f}s")
    else:
        log(f"banners load failed again the same way (exit {rc})")
    sys.stdout.flush()
    return rc, reason


def once(data_dir: Path, settle: float, load_args: list[str]) -> int:
    files = settled(data_dir, settle)
    rc = 0
    while files:
        rc, _ = load(data_dir, files, load_args)
        if rc == EXIT_USAGE or signature(data_dir) == files:
            return rc
        log("files changed during the load: loading again once they settle")
        files = settled(data_dir, settle)
    log(f"no *.csv under {data_dir}: nothing to load")
    return rc


def watch(data_dir: Path, interval: float, settle: float, load_args: list[str]) -> int:
    loaded = None  # signature of the last load that published
    failed, reason, retry_at, backoff = None, None, 0.0, interval
    while True:
        files = signature(data_dir)
        if files and files != loaded and (files != failed or time.monotonic() >= retry_at):
            files = settled(data_dir, settle, files)
            rc, why = load(data_dir, files, load_args, reason if files == failed else None)
            if rc == EXIT_USAGE:
                return rc
            if rc in PUBLISHED:
                loaded, failed, reason, backoff = files, None, None, interval
            else:
                # Nothing published (Redis unreachable, no valid data): try the same files
                # again later, each time later (capped), sooner if they change.
                if files != failed:
                    backoff = interval
                if files != failed or why != reason:
                    log(f"nothing published: {why}")
                failed, reason, retry_at = files, why, time.monotonic() + backoff
                log(f"retrying in {backoff:.0f}s or when files change")
                backoff = min(backoff * 2, MAX_BACKOFF)
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    load_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, load_args = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(prog="load_on_change.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--watch", type=float, metavar="SECONDS", default=None,
                        help="keep watching, looking every SECONDS (default: load once and exit)")
    parser.add_argument("--settle", type=float, metavar="SECONDS", default=5.0,
                        help="how long the folder must stay unchanged before a load (default 5)")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        log(f"{args.data_dir} is not a folder")
        return EXIT_USAGE
    # As PID 1 of a container, a signal without a handler is ignored: stop on TERM.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.watch is None:
        return once(args.data_dir, args.settle, load_args)
    if args.watch <= 0:
        parser.error("--watch must be more than 0")
    return watch(args.data_dir, args.watch, args.settle, load_args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
