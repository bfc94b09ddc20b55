"""The checks of the BANNERS_* variables: each turns a variable's text into its value
or raises ValueError("is not ..." / "must be ...") for config.py to name the variable
in a SettingError.  Pure functions of the text (and, for paths, the file system);
they know no variable names, so the loader and the CLI use them too (cap_window,
parse_network, parse_origin, split_networks).
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import re
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from .bind import parse_bind
from .clients.urls import check_url


def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text.strip())
        except ValueError:
            raise ValueError("is not a whole number") from None
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(f"must be {minimum}-{maximum}" if maximum is not None else f"must be at least {minimum}")
        return number

    return parse


def _seconds(text: str) -> float:
    try:
        number = float(text.strip())
    except ValueError:
        raise ValueError("is not a number of seconds") from None
    if not 0 < number < float("inf"):
        raise ValueError("must be more than 0")
    return number


_TRUE, _FALSE = {"1", "true", "t", "yes", "y", "on"}, {"0", "false", "f", "no", "n", "off"}  # click's


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    raise ValueError("is not a yes/no value (1, true, yes, on / 0, false, no, off)")


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _token(text: str) -> str:
    # RFC 6750's b64token: what an `Authorization: Bearer` header can carry as it is.
    if not re.fullmatch(r"[A-Za-z0-9._~+/-]+=*", text.strip()):
        raise ValueError("must be letters, digits and - . _ ~ + / (a bearer token), with no spaces")
    if len(text.strip()) < 16:
        raise ValueError("must be at least 16 characters")
    return text.strip()


def _path(text: str) -> Path:
    return Path(_text(text))


def _folder(text: str) -> Path:
    path = Path(_text(text))
    if not path.is_dir():
        raise ValueError("is not a folder")
    return path.resolve()


def _choice(*words: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.strip().lower() not in words:
            raise ValueError(f"is not one of {', '.join(words)}")
        return text.strip().lower()

    return parse


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError("is not an address or network") from None


def split_networks(text: str) -> list[str]:
    """Items of a list of networks: separated by commas and/or spaces."""
    return [p for p in re.split(r"[\s,]+", text) if p]


def _networks(text: str) -> tuple:
    return tuple(parse_network(p) for p in split_networks(text))


def parse_origin(text: str) -> str:
    """A web origin for CORS (`https://shop.example`, scheme://host[:port], nothing
    more), or `*`."""
    text = text.strip().rstrip("/")
    if text == "*":
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(f"{text!r} is not an origin like https://shop.example (or *)")
    return text


def _origins(text: str) -> tuple:
    return tuple(parse_origin(o) for o in re.split(r"[,\s]+", text.strip()) if o)


def _frame_ancestors(text: str) -> str:
    # CSP source expressions: `*`, 'self', 'none', scheme: or host sources, no quotes
    # or semicolons that would end the directive and open another.
    if not re.fullmatch(r"[A-Za-z0-9*:/._\-' ]+", text.strip()) or ";" in text:
        raise ValueError("is not a list of CSP sources, e.g. * or https://shop.example 'self'")
    return text.strip()


def _memory(text: str) -> str:
    # redis.conf's memory units; redis-server refuses anything else, after it was started
    if not re.fullmatch(r"\d+(b|k|kb|m|mb|g|gb)?", text.strip(), re.I):
        raise ValueError("is not a size like 512mb or 1gb")
    return text.strip()


def check_zone(text: str, now: dt.datetime | None = None) -> str:
    """The name of an IANA time zone, or ValueError naming zones it may have meant:
    close spellings, or for a UTC offset (+05:45) the zones at that offset `now`."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    name = text.strip()
    try:
        ZoneInfo(name)
        return name
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    zones = sorted(available_timezones())
    offset = re.fullmatch(r"(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?", name, re.I)
    if offset:
        sign, hours, minutes = offset.groups()
        want = dt.timedelta(hours=int(hours), minutes=int(minutes or 0)) * (1 if sign == "+" else -1)
        now = now or dt.datetime.now(dt.timezone.utc)
        at = [z for z in zones if "/" in z and not z.startswith(("Etc/", "SystemV/"))
              and now.astimezone(ZoneInfo(z)).utcoffset() == want]
        raise ValueError(f"is a UTC offset, not a time zone (offsets change with daylight saving time); "
                         f"zones at {sign}{int(hours):02}:{int(minutes or 0):02} now: "
                         f"{', '.join(at[:8]) + (', ...' if len(at) > 8 else '') if at else 'none'}")
    close = difflib.get_close_matches(name, zones, n=3, cutoff=0.6)
    raise ValueError("is not a time zone" + (f"; did you mean {', '.join(close)}?" if close else
                                             " (an IANA name like Europe/Amsterdam)"))


def _checked_by(check: Callable[[str], object], what: str) -> Callable[[str], str]:
    """The text, stripped, once `check` accepts it; its refusal said as `what`."""
    def parse(text: str) -> str:
        try:
            check(text.strip())
        except ValueError as exc:
            raise ValueError(f"is not {what}: {exc}") from None
        return text.strip()

    return parse


_redis_url = _checked_by(check_url, "a Redis URL both clients can use")
_bind = _checked_by(parse_bind, "an address gunicorn can listen on")


def _secret(text: str) -> str:
    if len(text.strip()) < 16:
        raise ValueError("must be at least 16 characters (it signs the click URLs)")
    return text.strip()


def _seconds_or_zero(text: str) -> float:
    try:
        number = float(text.strip())
    except ValueError:
        raise ValueError("is not a number of seconds") from None
    if not 0 <= number < float("inf"):
        raise ValueError("must be 0 or more")
    return number


def _substrings(text: str) -> tuple:
    parts = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    if not parts:
        raise ValueError("must name at least one user-agent substring")
    return parts


_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_CAP_WINDOW = 366 * 86400  # a cap counter is anonymous state with this TTL at most


def cap_window(text: str) -> int:
    """A frequency cap's window: seconds (`3600`) or a number and a unit (`90m`, `1h`,
    `1d`); 1 second to a year.  ValueError otherwise."""
    text = text.strip().lower()
    unit = _WINDOW_UNITS.get(text[-1:]) if text else None
    digits = text[:-1] if unit else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 9:
        raise ValueError(f"is not a window like 3600, 90m, 1h or 1d: {text[:20]!r}")
    seconds = int(digits) * (unit or 1)
    if not 1 <= seconds <= MAX_CAP_WINDOW:
        raise ValueError(f"must be 1 second to 366 days, not {seconds} s")
    return seconds


def frequency_cap(text: str) -> tuple[int, int]:
    """`N/WINDOW`: at most N impressions per visitor and campaign per window
    (`3/3600`, `3/1h`, `10/1d`)."""
    count, sep, window = text.strip().partition("/")
    if not sep or not count.strip().isascii() or not count.strip().isdigit() or not 1 <= int(count) <= 10**9:
        raise ValueError("is not a cap like 3/3600, 3/1h or 10/1d (impressions/window, impressions at least 1)")
    return int(count), cap_window(window)


def _campaign_tokens(text: str) -> tuple:
    """`campaign:token` pairs separated by commas or spaces: (campaign, token), ..."""
    pairs = []
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        campaign, sep, token = item.partition(":")
        if not sep or not campaign.isascii() or not campaign.isdigit() or len(campaign) > 18:
            raise ValueError("must be campaign:token pairs (a campaign id, a colon, a bearer token), separated "
                             "by commas")
        try:
            pairs.append((int(campaign), _token(token)))
        except ValueError as exc:
            raise ValueError(f"has a token for campaign {int(campaign)} that {exc}") from None
    return tuple(pairs)


def _fingerprint(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{16}", text.strip().lower()):
        raise ValueError("is not a secret's fingerprint (16 hexadecimal digits, as serve's refusal shows it)")
    return text.strip().lower()
