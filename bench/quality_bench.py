"""Cost of classifying one impression (banner_server/web/quality.py), in µs per call.

    PYTHONPATH=. .venv/bin/python bench/quality_bench.py   # writes bench/results/quality.md

warm: a user-agent seen before (the LRU's dict lookup plus the header checks);
cold: a user-agent never seen (the LRU misses and asks the list); off: BANNERS_CLASSIFY=false.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from ua_samples import BOTS, BROWSERS  # noqa: E402


def load():
    try:
        from banner_server.web import quality
        return quality
    except ImportError:  # before banner_server/web/ is a package
        import banner_server

        pkg = sys.modules.setdefault("banner_server.web", types.ModuleType("banner_server.web"))
        pkg.__path__ = [str(ROOT / "banner_server" / "web")]
        banner_server.web = pkg
        spec = importlib.util.spec_from_file_location("banner_server.web.quality",
                                                      ROOT / "banner_server" / "web" / "quality.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


def per_call(fn, n: int) -> float:
    """Best of 5 runs of n calls, µs per call (the best run: least disturbed by other jobs)."""
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n * 1e6)
    return min(runs)


def main() -> None:
    q = load()
    envs = [{"HTTP_USER_AGENT": ua, "HTTP_ACCEPT": "*/*"} for ua in BROWSERS + BOTS]
    on = q.Classifier()
    off = q.Classifier(enabled=False)
    for e in envs:
        on.impression("GET", e, "198.51.100.7")
    browser = envs[0]

    warm = per_call(lambda: on.impression("GET", browser, "198.51.100.7"), 200_000)
    disabled = per_call(lambda: off.impression("GET", browser, "198.51.100.7"), 200_000)

    counter = iter(range(10**9))

    def cold_browser():
        # a different user-agent each call: a version number no one has sent yet
        on.impression("GET", {"HTTP_USER_AGENT": BROWSERS[0].replace("142.0.0.0", f"142.0.{next(counter)}.0")},
                      "198.51.100.7")

    cold = per_call(cold_browser, 5_000)
    cold_bots = statistics.median(
        per_call(lambda ua=ua: q._is_crawler(ua), 200) for ua in BOTS)

    lines = [
        "# Classifying one impression",
        "",
        f"Written by `bench/quality_bench.py` (Python {sys.version.split()[0]}; best of 5 runs, shared 2-core machine).",
        "",
        "| case | µs per call |",
        "|---|---|",
        f"| warm: a browser user-agent seen before (LRU hit + header checks) | {warm:.2f} |",
        f"| cold: a browser user-agent never seen (LRU miss, the list asked) | {cold:.2f} |",
        f"| the list alone on a bot's user-agent (median over the sample) | {cold_bots:.2f} |",
        f"| off (`BANNERS_CLASSIFY=false`) | {disabled:.2f} |",
        "",
    ]
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "quality.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
