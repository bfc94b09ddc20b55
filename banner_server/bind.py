"""Checks a `--bind` address before gunicorn gets it.

With `reuse_port`, gunicorn's workers open their listening sockets themselves; a
worker that cannot (an unknown host, a port another program holds, a privileged
port) exits with a plain error code, and the master boots another one, forever.
A probe bind in the parent turns that loop into one clear message.
"""

from __future__ import annotations

import socket
from pathlib import Path

DEFAULT_PORT = 8000  # gunicorn's, for a bind without a port


def is_tcp(bind: str) -> bool:
    """False for gunicorn's unix-socket and inherited-fd binds."""
    return not bind.startswith(("unix:", "fd://"))


def parse_bind(bind: str) -> tuple[str, int] | None:
    """(host, port) of a TCP bind; None for a unix socket or an inherited fd.
    Raises ValueError for a malformed one."""
    if not is_tcp(bind):
        return None
    host, sep, port_text = bind.rpartition(":")
    if not sep or (host.endswith(":") and not host.startswith("[")):
        host, port_text = bind, str(DEFAULT_PORT)  # no port, or a bare IPv6 address
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return host.strip("[]") or "0.0.0.0", port


def bind_problem(bind: str) -> str | None:
    """Why `bind` cannot be listened on right now, or None.  Raises ValueError when
    it is malformed (a usage error rather than a problem of this machine)."""
    parsed = parse_bind(bind)
    if parsed is None:
        if bind.startswith("unix:"):
            folder = Path(bind[len("unix:"):]).parent
            return None if folder.is_dir() else f"folder {folder} does not exist"
        return None  # an inherited socket: gunicorn checks it
    host, port = parsed
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
