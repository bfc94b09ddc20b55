"""Checks a `--bind` address before gunicorn gets it, with gunicorn's own parser.

With `reuse_port`, gunicorn's workers open their listening sockets themselves; a
worker that cannot (an unknown host, a port another program holds, a privileged
port) exits with a plain error code, and the master boots another one, forever.
A probe bind in the parent turns that loop into one clear message.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from gunicorn.util import parse_address

DEFAULT_PORT = 8000  # gunicorn's, for a bind without a port


def is_tcp(bind: str) -> bool:
    """False for gunicorn's unix-socket and inherited-fd binds."""
    return isinstance(_parse(bind), tuple)


def _parse(bind: str):
    """gunicorn's reading of a bind: (host, port), a unix socket path, or an fd."""
    if not bind.strip():
        raise ValueError("the address is empty")
    try:
        parsed = parse_address(bind.strip(), str(DEFAULT_PORT))
    except RuntimeError as exc:  # gunicorn's way of saying "malformed"
        hint = ""
        host = bind.strip().removeprefix("tcp://")
        if host.count(":") > 1 and "[" not in host:
            hint = f"; an IPv6 address goes in brackets: [{host}]:{DEFAULT_PORT}"
        raise ValueError(f"{str(exc).rstrip('.')}{hint}") from None
    if parsed == "":
        raise ValueError("a unix socket needs its path, e.g. unix:/run/banners.sock")
    return parsed


def parse_bind(bind: str) -> tuple[str, int] | None:
    """(host, port) of a TCP bind; None for a unix socket or an inherited fd.
    Raises ValueError for a malformed one."""
    parsed = _parse(bind)
    if not isinstance(parsed, tuple):
        return None
    host, port = parsed
    if port == 0:
        # gunicorn takes it, but every worker binds its own socket (reuse_port): each
        # would get a different random port.
        raise ValueError("port 0 (a random port) cannot be shared by the workers: name a port")
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return host or "0.0.0.0", port


def describe(bind: str) -> str:
    """The address gunicorn will listen on, as its log writes it: http://HOST:PORT or
    unix:PATH, with the default port spelled out."""
    parsed = _parse(bind)
    if isinstance(parsed, str):
        return f"unix:{parsed}"
    if isinstance(parsed, int):
        return f"fd://{parsed}"
    host, port = parse_bind(bind)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind_problem(bind: str) -> str | None:
    """Why `bind` cannot be listened on right now, or None.  Raises ValueError when
    it is malformed (a usage error rather than a problem of this machine)."""
    parsed = _parse(bind)
    if isinstance(parsed, str):
        folder = Path(parsed).parent
        return None if folder.is_dir() else f"folder {folder} does not exist"
    if isinstance(parsed, int):
        # An inherited socket (systemd, a supervisor): it must be open and a socket.
        import stat as stat_mod

        try:
            mode = os.fstat(parsed).st_mode
        except OSError as exc:
            return f"file descriptor {parsed} is not open ({exc.strerror})"
        return None if stat_mod.S_ISSOCK(mode) else f"file descriptor {parsed} is not a socket"
    host, port = parse_bind(bind)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        return f"unknown host {host!r} ({exc.strerror})"
    # No SO_REUSEPORT here on purpose: the probe must fail when anything, another
    # `banners serve` included, already listens there.
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        probe.bind(address)
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        probe.close()
    return None


if __name__ == "__main__":  # `make run` checks its port before it loads anything
    import sys

    try:
        why = bind_problem(sys.argv[1])
    except ValueError as exc:
        sys.exit(f"error: {sys.argv[1]}: {exc}")
    if why:
        sys.exit(f"error: cannot listen on {describe(sys.argv[1]).removeprefix('http://')}: {why} "
                 "(another server there? make run PORT=8001 picks another port)")
