"""Where one campaign request's CPU goes, without the network: the WSGI app called in a
loop against a private redis-server.  `python bench/profile_request.py [--profile]`"""

from __future__ import annotations

import argparse
import io
import sys
import time

from harness import ROOT, Workspace  # noqa: F401  (puts the project on sys.path)

from banner_server.config import Settings
from banner_server.hosting.wsgi import build


def environ(i: int) -> dict:
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": f"/campaigns/{1 + i % 50}", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_ACCEPT": "application/json",
        "HTTP_COOKIE": f"visitor_id={'v%021d' % (i % 1000)}", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http", "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }


def start_response(status, headers, exc_info=None):
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    with Workspace() as ws:
        ws.start_redis()
        ws.load(ws.data_dir(0.05))
        app = build(Settings(redis_url=ws.redis_url))
        envs = [environ(i) for i in range(1000)]
        for e in envs[:100]:
            app(e, start_response)
        if args.profile:
            from pyinstrument import Profiler
            prof = Profiler(interval=0.0001)
            prof.start()
        t = time.perf_counter()
        for i in range(args.n):
            e = envs[i % 1000]
            e["wsgi.input"] = io.BytesIO(b"")
            b"".join(app(e, start_response))
        dt = time.perf_counter() - t
        if args.profile:
            prof.stop()
            print(prof.output_text(unicode=False, color=False, show_all=False))
        print(f"{dt / args.n * 1e6:.1f} us per request (Python + one Redis round trip)")


if __name__ == "__main__":
    main()
