"""What traffic quality and frequency caps cost a request, measured in-process.

`make bench` compares whole servers under wrk; on a machine shared with other work
its CPU-per-request figures move by more than the 5 % this is about.  This drives
the two apps of one worker (classification and a cap on every campaign, or neither)
in this process, through WSGI (no HTTP), over the same private redis-server with the
server's own clients, rounds in a shuffled order, and counts this process' CPU
(time.process_time: only its own, whatever else runs) and Redis' (INFO cpu) per
request.  Returning visitors (a pool of cookies, a browser's User-Agent) ask random
campaigns of the real set, as bench/visitors.lua does.

    python bench/quality_cost.py [--requests 10000] [--rounds 10] [--aa] [--variants]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import time

import redis

from harness import RESULTS_DIR as RESULTS, Workspace, machine

from banner_server.clock import quarter_of, system_clock  # noqa: E402
from banner_server.config import Settings  # noqa: E402
from banner_server.layout.keys import Keys  # noqa: E402
from banner_server.web.app import create_app  # noqa: E402

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
CAP = (1_000_000, 86_400)  # never reached: every request pays the check and the count


def environ(path: str, cookie: str) -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
            "HTTP_ACCEPT": "application/json", "HTTP_COOKIE": cookie, "HTTP_USER_AGENT": UA,
            "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False}


def run(app, requests: list[dict], r: redis.Redis) -> tuple[float, float]:
    """(this process' CPU µs, Redis' CPU µs) per request."""
    statuses = []

    def start(status, headers, exc_info=None):
        statuses.append(status)

    info0 = r.info("cpu")
    t0 = time.process_time()
    for env in requests:
        for _ in app(dict(env, **{"wsgi.input": io.BytesIO()}), start):
            pass
    t1 = time.process_time()
    info1 = r.info("cpu")
    assert all(s.startswith("200") for s in statuses), set(statuses)
    redis_cpu = sum(float(info1[k]) - float(info0[k]) for k in ("used_cpu_user", "used_cpu_sys"))
    return (t1 - t0) / len(requests) * 1e6, redis_cpu / len(requests) * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--aa", action="store_true", help="also a second \"off\" app: the noise of the measure")
    ap.add_argument("--variants", action="store_true", help="also classification alone and the cap alone")
    args = ap.parse_args(argv)
    rng = random.Random(1)
    with Workspace() as ws:
        ws.start_redis()
        ws.load(ws.data_dir(1.0))
        r = redis.Redis.from_url(ws.redis_url)
        base = dict(redis_url=ws.redis_url, state_dir=ws.dir / "state", redis_timeout=0.5)
        apps = {"on": create_app(Settings(**base, classify=True, frequency_cap=CAP)),
                **({"off2": create_app(Settings(**base, classify=False))} if args.aa else {}),
                "off": create_app(Settings(**base, classify=False))}
        if args.variants:
            apps["classify"] = create_app(Settings(**base, classify=True))
            apps["cap"] = create_app(Settings(**base, classify=False, frequency_cap=CAP))
        keys = Keys()
        shown = json.loads(r.get(keys.selections(r.get(keys.current).decode())))
        quarter = quarter_of(system_clock(None)())
        campaigns = sorted({c["campaign_id"] for c in shown if c["quarter"] == quarter})
        cookies = ["visitor_id=" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(22))
                   for _ in range(400)]
        requests = [environ(f"/campaigns/{rng.choice(campaigns)}", rng.choice(cookies))
                    for _ in range(args.requests)]
        for app in apps.values():  # warm-up: connections, script cache, snapshot, verdict cache
            run(app, requests[:2000], r)
        results = {name: [] for name in apps}
        order = list(apps)
        for _ in range(args.rounds):
            # A round's first app pays for what the others left behind (measured: ~15 %
            # with a fixed order), so each round runs them in a new order.
            rng.shuffle(order)
            for name in order:
                results[name].append(run(apps[name], requests, r))
    med = {name: (statistics.median(a for a, _ in rs), statistics.median(b for _, b in rs))
           for name, rs in results.items()}
    for name, (app_us, redis_us) in med.items():
        print(f"{name:4} app {app_us:6.1f} µs/request  Redis {redis_us:5.1f} µs/request  total {app_us + redis_us:6.1f}")
    ratio_app = med["on"][0] / med["off"][0]
    ratio_total = sum(med["on"]) / sum(med["off"])
    print(f"on/off: app CPU {ratio_app:.3f}, app + Redis CPU {ratio_total:.3f} (bar: at most 1.05)")
    print(f"({machine()}; {args.requests} requests x {args.rounds} rounds, alternated; medians)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality_cost.json").write_text(json.dumps(
        {"machine": machine(), "args": vars(args), "median_us": med, "rounds": results,
         "ratio_app": ratio_app, "ratio_total": ratio_total, "when": time.strftime("%Y-%m-%d %H:%M:%S")},
        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
