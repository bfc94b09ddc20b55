"""Signed click tokens: which campaign and banner were shown, and when.

A click URL must not be an open redirect nor let anyone mint clicks for banners that
were never shown: the token carries (campaign, banner, time served) and an HMAC of
them with the server's secret (BANNERS_SECRET, or a random one generated once in
the state folder).  Every host behind one load balancer needs the same secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct
from pathlib import Path

_PAYLOAD = struct.Struct(">BqqQ")  # format version, campaign, banner, served at (unix seconds)
_VERSION = 1
# Version 2 adds a tag of the visitor the banner was shown to (4 bytes of a keyed hash
# of its id: tells another visitor's click apart, reveals nothing of the id).
_TAGGED = struct.Struct(">BqqQ4s")
_VERSION_TAGGED = 2
_MAC_BYTES = 16  # 128 bits of HMAC-SHA256: forging one is out of reach
TOKEN_TTL = 24 * 3600


class BadToken(ValueError):
    """Forged, altered or not a token at all."""


class ExpiredToken(ValueError):
    """Genuine, but older than TOKEN_TTL."""


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


class ClickSigner:
    def __init__(self, secret: bytes, ttl: int = TOKEN_TTL):
        if len(secret) < 16:
            raise ValueError("the click-token secret must be at least 16 bytes")
        self.secret = secret
        self.ttl = ttl
        self._keyed = hmac.new(secret, digestmod="sha256")  # copied per token: the key is hashed once
        self._tag_key = hashlib.sha256(b"visitor tag\0" + secret).digest()
        self._second = -1
        self._recent: dict[tuple[int, int], str] = {}

    def _mac(self, payload: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(payload)
        return mac.digest()[:_MAC_BYTES]

    def visitor_tag(self, visitor: str) -> bytes:
        """The 4-byte tag of a visitor id a tagged token carries: keyed BLAKE2b (a
        fifth of an HMAC's cost; every answer to a new visitor signs one)."""
        return hashlib.blake2b(visitor.encode(), digest_size=4, key=self._tag_key).digest()

    def sign(self, campaign: int, banner: int, served_at: int, visitor: str | None = None) -> str:
        """The token of (campaign, banner, served_at), tagged with `visitor` when given
        (then every visitor's click URL is its own: one click URL records one click).
        Every banner answer signs one: within a second the same campaign and banner
        (and visitor) get the same token, from a cache emptied each second (at 20k
        answers a second over a few hundred banners, most untagged answers find theirs
        there)."""
        if served_at != self._second:
            self._second = served_at
            self._recent = {}
        token = self._recent.get((campaign, banner, visitor))
        if token is None:
            if visitor is None:
                payload = _PAYLOAD.pack(_VERSION, campaign, banner, served_at)
            else:
                payload = _TAGGED.pack(_VERSION_TAGGED, campaign, banner, served_at, self.visitor_tag(visitor))
            token = self._recent[campaign, banner, visitor] = _b64(payload + self._mac(payload))
        return token

    def verify(self, token: str, now: float) -> tuple[int, int, int]:
        """(campaign, banner, served_at) of a genuine, unexpired token."""
        return self.verify_tagged(token, now)[:3]

    def verify_click(self, token: str, now: float, visitor: "str | list[str] | None"
                     ) -> tuple[int, int, int, bool]:
        """(campaign, banner, served_at, other_visitor) of a genuine, unexpired token:
        other_visitor when the token was signed for a visitor and `visitor` (the one
        clicking: an id, or the ids it may be; None when unknown) is not that one."""
        campaign, banner, served_at, tag = self.verify_tagged(token, now)
        candidates = [visitor] if isinstance(visitor, str) else visitor or []
        other = tag is not None and not any(hmac.compare_digest(tag, self.visitor_tag(v)) for v in candidates)
        return campaign, banner, served_at, other

    def verify_tagged(self, token: str, now: float) -> tuple[int, int, int, bytes | None]:
        """(campaign, banner, served_at, visitor tag or None) of a genuine, unexpired token."""
        if len(token) > 100:
            raise BadToken("too long")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise BadToken("not base64") from None
        if len(raw) not in (_PAYLOAD.size + _MAC_BYTES, _TAGGED.size + _MAC_BYTES):
            raise BadToken("wrong length")
        if _b64(raw) != token:
            # base64's spare bits in the last character: one token, one spelling
            raise BadToken("not the canonical encoding")
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise BadToken("bad signature")
        if len(payload) == _TAGGED.size:
            version, campaign, banner, served_at, tag = _TAGGED.unpack(payload)
            expected = _VERSION_TAGGED
        else:
            (version, campaign, banner, served_at), tag = _PAYLOAD.unpack(payload), None
            expected = _VERSION
        if version != expected or campaign < 0 or banner < 0:
            raise BadToken("unknown format")
        if now - served_at > self.ttl:
            raise ExpiredToken(f"served {int(now - served_at)} s ago")
        return campaign, banner, served_at, tag


class SecretError(ValueError):
    """The state folder's secret cannot be used or made; the message says why and what
    to do, never the secret.  `environment` is True for the system's refusals
    (permissions, a full disk), False for a file whose content is wrong."""

    def __init__(self, message: str, environment: bool = False):
        super().__init__(message)
        self.environment = environment


MIN_SECRET = 16  # ClickSigner's floor


def fingerprint(secret: bytes) -> str:
    """What hosts compare to know they sign with one secret, without showing it: 64
    bits of HMAC-SHA256(secret, a fixed text), which says nothing about the secret."""
    return hmac.new(secret, b"banners fingerprint", "sha256").hexdigest()[:16]


def load_secret(env_value: str | None, state_dir: Path) -> bytes:
    """The configured secret (config.SECRET), else the state folder's `secret` file,
    created (0600) on first use.  SecretError when the file is empty, too short or
    unreadable, or cannot be made; no temporary file is left behind."""
    if env_value:
        return env_value.encode()
    path = Path(state_dir) / "secret"
    try:
        return _checked(path, path.read_bytes().strip())
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise SecretError(f"{path} is a folder, not a secret file") from None
    except OSError as exc:
        raise SecretError(f"cannot read the secret file {path}: {exc.strerror}", environment=True) from None
    value = secrets.token_urlsafe(32).encode()
    # Written whole to a temporary file, then linked into place: two processes starting
    # at once both end up with the one secret that was linked first, never a half one.
    tmp = path.with_name(f".secret.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(value + b"\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                value = _checked(path, path.read_bytes().strip())
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise SecretError(f"cannot make the secret file {path}: {exc.strerror or exc}", environment=True) from None
    return value


def _checked(path: Path, value: bytes) -> bytes:
    if len(value) < MIN_SECRET:
        what = "empty" if not value else f"{len(value)} bytes, fewer than {MIN_SECRET}"
        raise SecretError(f"the secret file {path} is {what}: delete it to have a new one made (click URLs "
                          f"already handed out then stop working), or set BANNERS_SECRET")
    return value
