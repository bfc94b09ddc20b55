"""Server settings, read once per worker from the environment `banners serve` sets."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "banners:"
    quarter: int | None = None  # pinned quarter (demos, tests); None: from the clock
    tz: str | None = None  # IANA zone; None: the system's
    images_dir: Path | None = None
    visitor_ttl: int = 24 * 3600  # seconds a visitor's last banner is remembered
    cookie_secure: bool = False
    trusted_proxies: tuple = ()  # networks whose X-Forwarded-For is believed
    redis_timeout: float = 0.05  # seconds; the hot path never waits longer on Redis
    # Connecting is once per worker but takes several round trips (TCP, TLS, AUTH); a
    # refused connection fails at once, only a silent host costs this, once per retry.
    redis_connect_timeout: float = 0.25
    redis_retry: float = 1.0  # seconds to answer from the snapshot before trying again
    metrics_dir: Path | None = None

    @classmethod
    def from_env(cls, env=os.environ) -> "Settings":
        def opt(name):
            value = env.get(name)
            return value if value not in (None, "") else None

        def num(name, cast, default, minimum=0.0):
            """A positive number from the environment, or ValueError naming the variable."""
            value = opt(name)
            if value is None:
                return default
            try:
                number = cast(value)
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a number") from None
            if not number > minimum:
                raise ValueError(f"{name}={value!r} must be more than {minimum:g}")
            return number

        proxies = tuple(
            ipaddress.ip_network(p.strip(), strict=False)
            for p in (env.get("BANNERS_TRUSTED_PROXIES") or "").split(",")
            if p.strip()
        )
        redis_timeout = num("BANNERS_REDIS_TIMEOUT", float, cls.redis_timeout)
        return cls(
            redis_url=opt("BANNERS_REDIS_URL") or cls.redis_url,
            key_prefix=opt("BANNERS_KEY_PREFIX") or cls.key_prefix,
            quarter=int(env["BANNERS_QUARTER"]) if opt("BANNERS_QUARTER") else None,
            tz=opt("BANNERS_TZ"),
            images_dir=Path(env["BANNERS_IMAGES"]) if opt("BANNERS_IMAGES") else None,
            visitor_ttl=num("BANNERS_VISITOR_TTL", int, cls.visitor_ttl),
            cookie_secure=_bool(env.get("BANNERS_COOKIE_SECURE")),
            trusted_proxies=proxies,
            redis_timeout=redis_timeout,
            # Never less than one command's budget: a connect is at least one round trip.
            redis_connect_timeout=max(redis_timeout, num("BANNERS_REDIS_CONNECT_TIMEOUT", float,
                                                         cls.redis_connect_timeout)),
            redis_retry=num("BANNERS_REDIS_RETRY", float, cls.redis_retry),
            metrics_dir=Path(env["BANNERS_METRICS_DIR"]) if opt("BANNERS_METRICS_DIR") else None,
        )
