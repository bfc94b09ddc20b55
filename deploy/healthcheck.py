"""Exit 0 when the server on BANNERS_BIND answers 200 to GET /healthz (--ready: /readyz).

The container's HEALTHCHECK: the image has no curl, and the address (host:port or
unix:/path) is whatever BANNERS_BIND says.  Both pages are public (no admin token):
/readyz answers only ready or not and a reason code (see README, Security).
"""

from __future__ import annotations

import http.client
import os
import socket
import sys

from banner_server.bind import parse_bind

TIMEOUT = 3.0
# A server bound to every address is asked on loopback.
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=TIMEOUT)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def connection(bind: str) -> http.client.HTTPConnection:
    if bind.startswith("unix:"):
        return UnixConnection(bind[len("unix:"):])
    host, port = parse_bind(bind)
    return http.client.HTTPConnection(WILDCARDS.get(host, host), port, timeout=TIMEOUT)


def main(argv: list[str]) -> int:
    path = "/readyz" if "--ready" in argv else "/healthz"
    bind = os.environ.get("BANNERS_BIND") or "127.0.0.1:8000"
    try:
        conn = connection(bind)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        print(f"GET {path} on {bind}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"GET {path} on {bind}: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
