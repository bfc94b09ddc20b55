"""Who a visitor is: the `visitor_id` cookie, else their address and User-Agent."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets

COOKIE = "visitor_id"
COOKIE_MAX_AGE = 365 * 24 * 3600


def new_visitor_id() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits, 22 characters


_IN_HEADER = re.compile(
    r"(?:^|[;,]\s*)visitor_id=([A-Za-z0-9_-]{22})(?:\.([0-9]{1,19}))?(?=$|[;,\s])").search


def cookie_value(visitor_id: str, banner_id: int) -> str:
    """The cookie set on a client's first answer: its id, then the banner it was
    just shown.  The cookie itself carries the cookie-less visitor's last banner to
    its first request with the cookie: nothing is stored per cookie handed out, so
    clients that drop cookies cost Redis one key per address + User-Agent, not one
    per request, and the history survives a change of address."""
    return f"{visitor_id}.{banner_id}"


def cookie_from_header(header: str | None) -> tuple[str | None, str | None]:
    """(visitor id, the last banner the cookie carries) from a raw Cookie header,
    if it is one we could have issued.  (Falcon's full cookie parse costs more than
    the rest of a request's logic.)"""
    if not header:
        return None, None
    m = _IN_HEADER(header)
    return (m.group(1), m.group(2)) if m else (None, None)


def anonymous_id(address: str, user_agent: str) -> str:
    digest = hashlib.blake2b(f"{address}\0{user_agent}".encode("utf-8", "replace"), digest_size=16)
    return digest.hexdigest()


def client_address(remote_addr: str, forwarded_for: str | None, trusted: tuple) -> str:
    """remote_addr, or with trusted proxies the right-most X-Forwarded-For entry that
    is not itself a trusted proxy (the left part of the header is client-supplied)."""
    if not trusted or not forwarded_for or not _is_trusted(remote_addr, trusted):
        return remote_addr
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if not hop:
            continue
        if not _is_trusted(hop, trusted):
            return hop
    return remote_addr


def _is_trusted(address: str, trusted: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)
