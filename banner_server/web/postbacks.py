"""POST /conversions (SPEC §7): the advertiser's postback of a conversion of a click
(its click_id, from the landing page's query), read from a JSON or form body.  Postbacks
are authenticated by a bearer token (BANNERS_POSTBACK_TOKEN for any campaign,
BANNERS_POSTBACK_TOKENS for an advertiser's own) and idempotent: a conversion id is
recorded once; the same postback again is a success, other values for it a conflict.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from decimal import Decimal
from typing import Callable
from urllib.parse import parse_qs

import falcon
from ..clients.errors import CLIENT_ERRORS
from ..clock import Clock
from ..ids import MAX_ID, parse_id
from ..layout.events import EventStore
from .html import RETRY_AFTER

log = logging.getLogger("banner_server")

MAX_BODY = 4096  # a postback is three fields; anything near this is not one
MAX_REVENUE = Decimal(10) ** 12  # per conversion; beyond it is a mistake, not a sale
REVENUE_DECIMALS = 9  # the loader ranks revenue rounded to 9 decimals
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?").fullmatch


class Malformed(ValueError):
    """A postback this service cannot read; the message says which field and why."""


def id_field(value, name: str) -> int:
    """An id from JSON (an integer, or its digits as a string) or a form field; text goes
    through the one id parser (ids.parse_id)."""
    if isinstance(value, bool):
        shown = json.dumps(value)
    elif isinstance(value, int):
        if 0 <= value <= MAX_ID:
            return value
        shown = str(value)
    elif isinstance(value, str):
        number = parse_id(value)
        if number is not None:
            return number
        # 19 digits above the range are shown as the number they are, anything else quoted
        shown = value if value.isascii() and value.isdigit() and len(value) <= 19 else repr(value[:40])
    else:
        shown = repr(json.dumps(value, default=str)[:40])
    raise Malformed(f"{name} must be an integer from 0 to {MAX_ID}, not {shown}")


def parse_revenue(value) -> str:
    """The canonical text of a revenue (a JSON number, or a decimal number as text):
    finite, at least 0, below 10^12, at most 9 decimals.  Canonical: no exponent, no
    trailing zeros (`12.50` and `12.5` are the same revenue)."""
    if isinstance(value, bool):
        number = None
    elif isinstance(value, (int, Decimal)):
        number = Decimal(value)
    elif isinstance(value, str) and _DECIMAL(value.strip()):
        number = Decimal(value.strip())
    else:
        number = None
    if number is None or not number.is_finite():
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        raise Malformed(f"revenue must be a decimal number like 12.50, not {shown[:40]!r}")
    if number < 0:
        raise Malformed(f"revenue must not be negative, not {number}")
    if number >= MAX_REVENUE:
        raise Malformed(f"revenue must be below {MAX_REVENUE:,}, not {number}")
    if number != number.quantize(Decimal(1).scaleb(-REVENUE_DECIMALS), rounding="ROUND_DOWN"):
        raise Malformed(f"revenue has more than {REVENUE_DECIMALS} decimals: {number}")
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


def _no_constants(name: str):
    raise Malformed(f"revenue must be a finite number, not {name}")


def _no_repeats(pairs):
    """JSON objects without a repeated name: the form reader refuses repeats too, and a
    silent last-wins would record a value the sender may not have meant."""
    fields = dict(pairs)
    if len(fields) != len(pairs):
        seen = set()
        repeated = next(name for name, _ in pairs if name in seen or seen.add(name))
        raise Malformed(f"{repeated[:40]!r} is given more than once in a JSON object")
    return fields


def read_postback(content_type: str | None, body: bytes) -> tuple[int, int, str]:
    """(click_id, conversion_id, revenue) of a postback body, JSON or form; Malformed
    otherwise (ValueError for a type that is neither)."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if not kind:  # no type said: what it looks like
        kind = "application/json" if body.lstrip()[:1] == b"{" else "application/x-www-form-urlencoded"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("the body is not UTF-8 text") from None
    if kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json")):
        try:
            fields = json.loads(text, parse_float=Decimal, parse_constant=_no_constants,
                                object_pairs_hook=_no_repeats)
        except Malformed:
            raise
        except json.JSONDecodeError as exc:
            raise Malformed(f"the body is not valid JSON ({exc.msg} at character {exc.pos})") from None
        except RecursionError:
            # 2,000 nested brackets fit in 4 KiB: was a 500 page and a traceback per request
            raise Malformed("the JSON body is nested too deeply") from None
        except ValueError as exc:  # an integer of more than 4,300 digits (Python's limit)
            raise Malformed(f"the JSON body holds a number this service does not read ({str(exc)[:60]})") from None
        if not isinstance(fields, dict):
            raise Malformed("the JSON body must be an object: "
                            '{"click_id": 123, "conversion_id": 456, "revenue": 12.5}')
    elif kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=20)
        except ValueError:
            raise Malformed("the form body is not name=value pairs joined by &") from None
        for name, values in pairs.items():
            if len(values) > 1 and name in ("click_id", "conversion_id", "revenue"):
                raise Malformed(f"{name} is given {len(values)} times")
        fields = {name: values[0] for name, values in pairs.items()}
    else:
        raise ValueError(kind)
    missing = [n for n in ("click_id", "conversion_id", "revenue") if n not in fields]
    if missing:
        raise Malformed(f"missing {', '.join(missing)}: a postback names click_id, conversion_id and revenue")
    return (id_field(fields["click_id"], "click_id"), id_field(fields["conversion_id"], "conversion_id"),
            parse_revenue(fields["revenue"]))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class WrongTokenLog:
    """Wrong postback tokens said once a minute per client, with how many came since:
    a sender with a stale token retrying (or someone guessing) no longer writes a
    WARNING per request."""

    EVERY = 60.0
    MAX_CLIENTS = 10_000  # the table is emptied beyond it (a flood of addresses)

    def __init__(self, tick: Callable[[], float] = time.monotonic):
        self.tick = tick
        self.clients: dict[str, list] = {}  # address -> [last said, unsaid since]

    def wrong(self, address: str | None) -> None:
        now = self.tick()
        entry = self.clients.get(address)
        if entry is not None and now - entry[0] < self.EVERY:
            entry[1] += 1
            return
        unsaid = entry[1] if entry else 0
        if len(self.clients) >= self.MAX_CLIENTS:
            self.clients.clear()
        self.clients[address] = [now, 0]
        log.warning("postback with a wrong token from %s%s", address,
                    f" ({unsaid} more since the last message)" if unsaid else "")


def parse_campaign_tokens(pairs) -> dict[bytes, frozenset[int]]:
    """token digest -> the campaigns it may post conversions for, from (campaign, token)
    pairs (config.POSTBACK_TOKENS)."""
    out: dict[bytes, set[int]] = {}
    for campaign, token in pairs or ():
        out.setdefault(_digest(token), set()).add(int(campaign))
    return {digest: frozenset(campaigns) for digest, campaigns in out.items()}


class ConversionResource:
    """POST /conversions: `Authorization: Bearer <token>`, a JSON or form body with
    click_id, conversion_id and revenue.  Answers are JSON whatever the Accept header
    (the caller is a program).

    The token is BANNERS_POSTBACK_TOKEN (any campaign's clicks) or one of
    BANNERS_POSTBACK_TOKENS (`campaign:token`: an advertiser's, for its campaigns'
    clicks only).

    201 recorded; 200 the same conversion again (counted once); 409 the conversion id
    was recorded with another click or revenue; 404 no such click (or older than 30
    days); 400 malformed; 401 no or wrong token; 403 a campaign's token for another
    campaign's click; 413 body over 4 KiB; 415 a body that is neither JSON nor a form;
    503 postbacks not configured (no token set: the sender keeps the conversion and
    retries, where a 4xx would make it give up) or Redis unreachable (with Retry-After).
    """

    def __init__(self, events: EventStore, token: str | None, now: Clock, campaign_tokens=(),
                 tick: Callable[[], float] = time.monotonic):
        self.events = events
        self._token = _digest(token) if token else None
        self._campaign_tokens = parse_campaign_tokens(campaign_tokens)
        self.now = now
        self.wrong_tokens = WrongTokenLog(tick)

    @staticmethod
    def _answer(resp: falcon.Response, status: int, body: dict, headers: dict | None = None) -> None:
        resp.status = status
        resp.cache_control = ["no-store"]
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps(body)
        if headers:
            resp.set_headers(headers)

    def _error(self, resp, status: int, title: str, detail: str, headers: dict | None = None) -> None:
        self._answer(resp, status, {"error": title, "detail": detail, "status": status}, headers)

    def _campaigns_of(self, req: falcon.Request) -> frozenset[int] | None | bool:
        """None: any campaign (the global token); the campaigns a campaign token covers;
        False: no or a wrong token."""
        scheme, _, credentials = (req.get_header("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return False
        # Compared as digests: constant time, whatever the length given.
        given = _digest(credentials.strip())
        if self._token is not None and hmac.compare_digest(given, self._token):
            return None
        for digest, campaigns in self._campaign_tokens.items():
            if hmac.compare_digest(given, digest):
                return campaigns
        return False

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._token is None and not self._campaign_tokens:
            self._error(resp, 503, "Postbacks are not configured",
                        "This server has no postback token: set BANNERS_POSTBACK_TOKEN (or BANNERS_POSTBACK_TOKENS) "
                        "to accept conversions.")
            return
        campaigns = self._campaigns_of(req)
        if campaigns is False:
            scheme, _, credentials = (req.get_header("Authorization") or "").strip().partition(" ")
            given = scheme.lower() == "bearer" and credentials.strip()
            if given:
                self.wrong_tokens.wrong(req.remote_addr)
            self._error(resp, 401, "Unauthorized",
                        "The postback token is wrong." if given else
                        "Send the postback token as `Authorization: Bearer <token>`.",
                        {"WWW-Authenticate": 'Bearer realm="conversions"' + (', error="invalid_token"' if given else "")})
            return
        length = req.content_length
        if length is not None and length > MAX_BODY:
            self._error(resp, 413, "Body too large", f"A postback body is at most {MAX_BODY} bytes.")
            return
        body = req.bounded_stream.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            self._error(resp, 413, "Body too large", f"A postback body is at most {MAX_BODY} bytes.")
            return
        try:
            click_id, conversion_id, revenue = read_postback(req.content_type, body)
        except RecursionError:  # a value nested deep enough to fail when it is shown
            self._error(resp, 400, "Malformed postback", "the JSON body is nested too deeply")
            return
        except Malformed as exc:
            log.info("malformed postback: %s", exc)
            self._error(resp, 400, "Malformed postback", str(exc))
            return
        except ValueError as exc:
            self._error(resp, 415, "Unsupported body type",
                        f"{exc} is not read here: send application/json or application/x-www-form-urlencoded.")
            return
        try:
            if campaigns is not None:  # an advertiser's token: its campaigns' clicks only
                click = self.events.click(click_id)
                if click is None:
                    self._error(resp, 404, "Unknown click", f"There is no click {click_id}: it was never made "
                                "here, or it is older than 30 days.")
                    return
                if click.campaign not in campaigns:
                    self._error(resp, 403, "Forbidden", f"This token posts conversions of campaign "
                                f"{', '.join(map(str, sorted(campaigns)))} only; click {click_id} is not one of them.")
                    return
            result = self.events.record_conversion(click_id, conversion_id, revenue, self.now())
        except CLIENT_ERRORS as exc:
            log.warning("postback of conversion %d not recorded (Redis: %s: %s); answered 503", conversion_id,
                        type(exc).__name__, exc)
            self._error(resp, 503, "Not recorded", "Redis is unreachable: the conversion was not recorded; "
                        "send it again later.", {"Retry-After": str(RETRY_AFTER)})
            return
        body = {"conversion_id": conversion_id, "click_id": click_id, "revenue": revenue}
        if result.outcome == "created":
            self._answer(resp, 201, {"status": "created", **body})
        elif result.outcome == "same":
            self._answer(resp, 200, {"status": "already_recorded", **body})
        elif result.outcome == "conflict":
            kept_click, kept_revenue = (result.recorded or " ").split(" ", 1)
            self._error(resp, 409, "Conflict",
                        f"Conversion {conversion_id} is already recorded with click {kept_click} and revenue "
                        f"{kept_revenue}; it is kept as it was.")
        else:
            self._error(resp, 404, "Unknown click",
                        f"There is no click {click_id}: it was never made here, or it is older than 30 days.")
