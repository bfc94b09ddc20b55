"""Who may read the operator pages: the holders of the admin credential.

`/dashboard` (HTML and JSON, every page of it), `/metrics` and the detailed readiness
(`/readyz?detail=1`) show revenue, clicks and configuration: they answer only a
request that carries BANNERS_ADMIN_TOKEN, as

* `Authorization: Bearer <token>` (Prometheus, curl, scripts), or
* HTTP Basic with any user name and the token as the password (a person's browser
  asks once and resends it).

Every other request gets 401 with `WWW-Authenticate: Basic realm="banners operators"`
(JSON or HTML by Accept, never cached).  These pages are GET/HEAD only and change
nothing, so a forged cross-site request can make a browser fetch them but not read
them (same-origin policy; no CORS header is ever set on them): there is no CSRF
surface and no cookie to protect.

With no token configured the safe default holds: one is made once in the state
folder (`STATE_DIR/admin_token`, 0600, like the click secret) and `banners serve`
says where it is; the token itself is never logged.  Tokens are compared in
constant time (hmac.compare_digest) over their SHA-256, so neither the content nor
the length leaks through timing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import falcon

REALM = 'Basic realm="banners operators", charset="UTF-8"'
TOKEN_FILE = "admin_token"


def token_path(state_dir) -> Path:
    return Path(state_dir) / TOKEN_FILE


def load_admin_token(env_value: str | None, state_dir) -> str:
    """The configured token (config.ADMIN_TOKEN), else the state folder's `admin_token`,
    created (0600) on first use.  Two processes starting at once end up with the same
    one: it is written whole to a temporary file, then linked into place."""
    if env_value:
        return env_value
    path = token_path(state_dir)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: no half-written token left behind
        raise
    try:
        os.link(tmp, path)
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        tmp.unlink()
    return value


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


class AdminAuth:
    """`allowed(req)`: does the request carry the token?  `require(req)`: else 401."""

    def __init__(self, token: str):
        if len(token) < 16:
            raise ValueError("the admin token must be at least 16 characters")
        self._digest = _digest(token)

    @classmethod
    def random(cls) -> "AdminAuth":
        """A token nobody knows: every operator page refused (tests, a Services built by hand)."""
        return cls(secrets.token_urlsafe(32))

    def _presented(self, header: str | None) -> str | None:
        if not header or len(header) > 1024:
            return None
        scheme, _, value = header.strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer":
            return value
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                return None
            _, sep, password = decoded.partition(":")
            return password if sep else None
        return None

    def allowed(self, req: falcon.Request) -> bool:
        presented = self._presented(req.env.get("HTTP_AUTHORIZATION"))
        if presented is None:
            return False
        return hmac.compare_digest(_digest(presented), self._digest)

    def require(self, req: falcon.Request) -> None:
        if not self.allowed(req):
            raise falcon.HTTPUnauthorized(
                title="Operators only",
                description="This page shows revenue, traffic or configuration: send the admin token "
                            "(BANNERS_ADMIN_TOKEN, or STATE_DIR/admin_token) as 'Authorization: Bearer <token>', "
                            "or as the password of HTTP Basic (any user name).",
                challenges=[REALM])
