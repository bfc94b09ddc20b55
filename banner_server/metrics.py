"""Prometheus text metrics that add up across gunicorn workers.

Each worker counts in memory and writes its totals to `<dir>/<pid>.json` at most
once a second (and when scraped); a scrape sums every file, including those of
workers that have exited, so counters never go backwards when a worker is replaced.
"""

from __future__ import annotations

import bisect
import json
import os
import time
from pathlib import Path

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self, directory: Path | None = None, monotonic=time.monotonic, flush_every: float = 1.0):
        self.dir = Path(directory) if directory else None
        self.monotonic = monotonic
        self.flush_every = flush_every
        self._next_flush = 0.0
        self.requests: dict[tuple[str, str], int] = {}
        self.latency: dict[str, list] = {}  # route -> [bucket counts..., +Inf, sum]
        self.served: dict[str, int] = {}
        self.degraded: dict[str, int] = {}

    def observe(self, route: str, status: str, seconds: float) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(route)
        if hist is None:
            hist = self.latency[route] = [0] * (len(BUCKETS) + 1) + [0.0]
        hist[bisect.bisect_left(BUCKETS, seconds)] += 1
        hist[-1] += seconds
        if self.dir is not None and self.monotonic() >= self._next_flush:
            self.flush()

    def banner_served(self, campaign: int) -> None:
        key = str(campaign)
        self.served[key] = self.served.get(key, 0) + 1

    def degraded_answer(self, reason: str) -> None:
        self.degraded[reason] = self.degraded.get(reason, 0) + 1

    # -- across workers ----------------------------------------------------------
    def _state(self) -> dict:
        return {
            "requests": [[r, s, n] for (r, s), n in self.requests.items()],
            "latency": self.latency,
            "served": self.served,
            "degraded": self.degraded,
        }

    def flush(self) -> None:
        self._next_flush = self.monotonic() + self.flush_every
        if self.dir is None:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.dir / f".{os.getpid()}.tmp"
            tmp.write_text(json.dumps(self._state()))
            os.replace(tmp, self.dir / f"{os.getpid()}.json")
        except OSError:
            pass  # metrics must never break serving

    def _all_states(self) -> list[dict]:
        if self.dir is None:
            return [self._state()]
        self.flush()
        states = []
        for path in self.dir.glob("*.json"):
            try:
                states.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return states

    def render(self, gauges: dict[str, float] | None = None) -> str:
        requests: dict[tuple[str, str], int] = {}
        latency: dict[str, list] = {}
        served: dict[str, int] = {}
        degraded: dict[str, int] = {}
        for st in self._all_states():
            for r, s, n in st["requests"]:
                requests[r, s] = requests.get((r, s), 0) + n
            for route, hist in st["latency"].items():
                acc = latency.setdefault(route, [0] * (len(BUCKETS) + 1) + [0.0])
                for i, v in enumerate(hist):
                    acc[i] += v
            for k, n in st["served"].items():
                served[k] = served.get(k, 0) + n
            for k, n in st["degraded"].items():
                degraded[k] = degraded.get(k, 0) + n
        out = [
            "# HELP banners_http_requests_total HTTP requests by route and status.",
            "# TYPE banners_http_requests_total counter",
        ]
        for (r, s), n in sorted(requests.items()):
            out.append(f'banners_http_requests_total{{route="{r}",status="{s}"}} {n}')
        out += [
            "# HELP banners_http_request_duration_seconds Time spent answering, by route.",
            "# TYPE banners_http_request_duration_seconds histogram",
        ]
        for route, hist in sorted(latency.items()):
            cum = 0
            for bound, n in zip((*BUCKETS, "+Inf"), hist[:-1]):
                cum += n
                le = bound if bound == "+Inf" else repr(bound)
                out.append(f'banners_http_request_duration_seconds_bucket{{route="{route}",le="{le}"}} {cum}')
            out.append(f'banners_http_request_duration_seconds_sum{{route="{route}"}} {hist[-1]}')
            out.append(f'banners_http_request_duration_seconds_count{{route="{route}"}} {cum}')
        out += [
            "# HELP banners_served_total Banners served, by campaign.",
            "# TYPE banners_served_total counter",
        ]
        for k, n in sorted(served.items(), key=lambda kv: int(kv[0])):
            out.append(f'banners_served_total{{campaign="{k}"}} {n}')
        out += [
            "# HELP banners_degraded_answers_total Answers given without Redis, by reason.",
            "# TYPE banners_degraded_answers_total counter",
        ]
        for k, n in sorted(degraded.items()):
            out.append(f'banners_degraded_answers_total{{reason="{k}"}} {n}')
        for name, value in (gauges or {}).items():
            out += [f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(out) + "\n"
