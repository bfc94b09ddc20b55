"""GET /click/{token} (SPEC §7): the click that leaves a banner for the campaign's
landing page (the advertiser's postback of a conversion is postbacks.py's).

Built the Revive Adserver way: the click URL is signed by the server (tokens.py), so
nobody can mint clicks for banners never shown nor use the service as an open
redirect (the landing page only ever comes from the published campaigns data, never
from the request); each click URL gets one integer click_id (a replay answers the same
one and records nothing), handed to the landing page in its query, which the
advertiser's postback names.
"""
from __future__ import annotations

import datetime as dt
import hmac
import html
import logging
from typing import Callable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import falcon
from ..clients.errors import CLIENT_ERRORS
from ..layout.events import EventStore
from .html import HTML_HEADERS, page
from .quality import IMPRESSION_REASONS, Classifier
from .tokens import BadToken, ClickSigner, ExpiredToken

log = logging.getLogger("banner_server")

# Safe in a Location header as they are: RFC 3986's reserved characters and '%' (the
# published URL may be percent-encoded already); anything else (non-ASCII, spaces,
# quotes, control characters) is percent-encoded, so no header can be forged.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"

Landing = Callable[[int], "tuple[str | None, str] | None"]
Clock = Callable[[], dt.datetime]


def with_click_id(url: str, click_id: int | None) -> str:
    """The landing URL with `click_id=<id>` in its query: its other parameters and its
    fragment kept as they are, a click_id it already had replaced."""
    parts = urlsplit(url)
    if click_id is not None:
        kept = [p for p in parts.query.split("&")
                if p and unquote(p.split("=", 1)[0].replace("+", " ")) != "click_id"]
        parts = parts._replace(query="&".join([*kept, f"click_id={click_id}"]))
    if not parts.netloc.isascii():  # an internationalised host name: its ASCII (punycode) form
        host = parts.hostname.encode("idna").decode()
        if ":" in host:  # an IPv6 address: hostname drops its brackets, the URL needs them
            host = f"[{host}]"
        userinfo = parts.netloc.rpartition("@")[0]
        port = f":{parts.port}" if parts.port else ""
        parts = parts._replace(netloc=(userinfo + "@" if userinfo else "") + host + port)
    return quote(urlunsplit(parts), safe=_URL_SAFE)


def landing_url(target) -> str | None:
    """The URL of a `landing(campaign)` answer, when it is one a browser may be sent to."""
    if not target or not target[1]:
        return None
    url = target[1]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (ValueError for a port that is not one)
        if parts.hostname:
            parts.hostname.encode("idna")
    except (ValueError, UnicodeError):
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


class ClickResource:
    """GET /click/{token}: verify, record, redirect.

    `landing(campaign) -> (name, url) | None` comes from the published campaigns data.
    A click that cannot be recorded (Redis unreachable) still sends the visitor on,
    without a click_id, and is logged: the visitor's way to the advertiser matters
    more than the count, and a later retry would count a click nobody made.
    HEAD checks the token and answers as GET would, recording nothing.

    Traffic quality (`classifier`, web/quality.py; None: every click is valid): each
    click is valid or invalid with one reason; an invalid one still redirects as a
    valid one would (a bot is never told), is recorded with its reason (audit) and is
    counted by reason in `metrics`; `banners export` writes it only with --invalid.
    """

    HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

    def __init__(self, events: EventStore, signer: ClickSigner, landing: Landing, now: Clock,
                 visitor: Callable[[falcon.Request], "str | list[str] | None"] | None = None,
                 classifier: Classifier | None = None, metrics=None,
                 address: Callable[[falcon.Request], str] | None = None):
        self.events = events
        self.classifier = classifier if classifier is not None and classifier.enabled else None
        self.metrics = metrics
        self.address = address  # the client's address through the trusted proxies (BANNERS_BOT_NETWORKS)
        # The visitor id of the request (its cookie), to tell a click by another visitor
        # than the one a tagged token was signed for; None: not checked.
        self.visitor = visitor
        self.signer = signer
        self.landing = landing
        self.now = now
        self.html_headers = {**HTML_HEADERS, **self.HEADERS}

    def _verify(self, req: falcon.Request, token: str, now: dt.datetime
                ) -> tuple[int, int, int, bool, str | None, bool]:
        """(campaign, banner, served_at, other_visitor, the visitor it was shown to when
        the clicker is that one, tagged)."""
        try:
            campaign, banner, served_at, tag = self.signer.verify_tagged(token, now.timestamp())
        except ExpiredToken:
            raise falcon.HTTPGone(
                title="Click link expired",
                description="A banner's link works for 24 hours after the banner was shown, and this one is older. "
                            "Reload the page that showed the banner to get a fresh one.",
                headers=self.HEADERS) from None
        except BadToken as exc:
            log.info("click with a bad token (%s) from %s", exc, req.remote_addr)
            raise falcon.HTTPBadRequest(
                title="Bad click link",
                description="This link was not made by this service, or it was altered on the way.",
                headers=self.HEADERS) from None
        if tag is None or not self.visitor:
            return campaign, banner, served_at, False, None, tag is not None
        who = self.visitor(req)
        for candidate in [who] if isinstance(who, str) else who or []:
            if hmac.compare_digest(tag, self.signer.visitor_tag(candidate)):
                return campaign, banner, served_at, False, candidate, True
        return campaign, banner, served_at, True, None, True

    def _classify(self, req: falcon.Request, now: dt.datetime, served_at: int, shown_to: str | None,
                  other_visitor: bool) -> tuple[str | None, str | None]:
        """(the request's reason, the click's own reason) to be invalid, None each when
        valid.  The impression is known when the token names the visitor clicking (a
        tagged token only comes from a banner answer to that visitor); an untagged one
        names nobody: `no_impression`.  Replays and the click rate are decided by the
        record's own Redis call."""
        classifier = self.classifier
        client = self.address(req) if self.address is not None and classifier.networks else None
        reason = classifier.click(req.method, req.env, client, served_at=served_at, now=now.timestamp(),
                                  impression_seen=shown_to is not None or other_visitor,
                                  other_visitor=other_visitor)
        if reason in IMPRESSION_REASONS:
            return reason, None
        return None, reason

    def on_get(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        self._answer(req, resp, token, record=True)

    def on_head(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        self._answer(req, resp, token, record=False)

    def _answer(self, req, resp, token: str, record: bool) -> None:
        now = self.now()
        # other_visitor: not checked without self.visitor (a tagged token says nothing
        # without the clicker's id)
        campaign, banner, served_at, other_visitor, shown_to, _ = self._verify(req, token, now)
        click_id = None
        if not record and self.classifier is not None and self.metrics is not None:
            self.metrics.click("head")  # HEAD records no click; counted as the invalid traffic it is
        if record:
            try:
                if self.classifier is None:
                    # Once per token: a replayed click URL answers the same click_id, records nothing.
                    recorded = self.events.record_click(campaign, banner, served_at, now, token=token,
                                                        other_visitor=other_visitor)
                else:
                    request_reason, click_reason = self._classify(req, now, served_at, shown_to, other_visitor)
                    # In the shown-to visitor's group, where the same call counts its clicks of
                    # the minute (BANNERS_MAX_CLICKS_PER_MINUTE): no second round trip.
                    recorded = self.events.record_click(
                        campaign, banner, served_at, now, token=token, other_visitor=other_visitor,
                        visitor=shown_to, request_reason=request_reason, click_reason=click_reason,
                        max_per_minute=self.classifier.max_clicks_per_minute, classified=True)
                click_id = recorded.click_id
                if self.metrics is not None:
                    self.metrics.click(recorded.reason)
            except CLIENT_ERRORS as exc:
                log.warning("click on banner %d of campaign %d not recorded (Redis: %s: %s); the visitor is sent "
                            "on without a click_id", banner, campaign, type(exc).__name__, exc)
            else:
                try:  # retention: one worker of the fleet per period (EventStore.maybe_prune)
                    self.events.maybe_prune(now)
                except CLIENT_ERRORS as exc:
                    log.warning("pruning old events failed (Redis: %s: %s); retried in a while", type(exc).__name__,
                                exc)
        target = self.landing(campaign)
        url = landing_url(target)
        resp.set_headers(self.HEADERS)
        if url is not None:
            resp.status = falcon.HTTP_302
            resp.set_header("Location", with_click_id(url, click_id))
            return
        if target and target[1]:
            log.warning("campaign %d's landing page is not an http(s) URL: not redirected", campaign)
        name = (target[0] if target else None) or f"Campaign {campaign}"
        recorded = (f"Your click was recorded (click {click_id})." if click_id is not None
                    else "Your click was not recorded." if record else "")
        resp.content_type = falcon.MEDIA_HTML
        resp.set_headers(self.html_headers)
        resp.text = page(
            name,
            f"<h1>{html.escape(name)}</h1><p>This campaign has no landing page to take you to. {recorded}</p>"
            f'<p><a href="/">All campaigns</a></p>')
