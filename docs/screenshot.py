"""Screenshots of a running server's pages in headless Chromium (Debian's `chromium`).

    python docs/screenshot.py URL OUT.png [--width 1200] [--height 900]

Used by `make screenshot` (the README's picture of /dashboard) and by the browser
test.  Chromium gets the flags this machine's closed network needs: no background
networking, no component updates, a throw-away profile.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _run(args: list[str], width: int, height: int, timeout: float) -> str:
    binary = chromium()
    if binary is None:
        raise RuntimeError("no Chromium found: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}", *args],
            check=True, capture_output=True, text=True, timeout=timeout).stdout


def screenshot(url: str, out: Path, width: int = 1200, height: int = 900, timeout: float = 60) -> Path:
    _run([f"--screenshot={out}", url], width, height, timeout)
    return out


def dump_dom(url: str, width: int = 1200, height: int = 900, timeout: float = 60, extra=()) -> str:
    """The document as the browser built it (after parsing, CSP applied); `extra` flags,
    e.g. --virtual-time-budget=5000 to let scripts and their requests finish."""
    return _run([*extra, "--dump-dom", url], width, height, timeout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("out", type=Path)
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=900)
    args = ap.parse_args()
    before = args.out.read_bytes() if args.out.exists() else None
    try:
        screenshot(args.url, args.out, args.width, args.height)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        sys.exit(f"screenshot failed: {exc}")
    after = args.out.read_bytes()
    # Say what happened either way: an unchanged picture is an answer too.
    state = "written" if before is None else "unchanged" if after == before else "updated"
    print(f"{args.out}: {state} ({len(after):,} bytes, {args.width}x{args.height}, from {args.url})")


if __name__ == "__main__":
    main()
