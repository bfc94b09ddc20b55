"""The banner answers: the pick every one of them makes (Draw), a campaign's banner as
a page or JSON, the <iframe> document and the embed script, the pictures, and the
index of the current quarter's campaigns."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib import resources
from typing import Callable

import falcon

from ..ids import parse_id
from . import visitors
from .html import HTML_HEADERS, RETRY_AFTER, bad_id, page, wants_json
from .images import ImageDir, banner_svg
from .services import Services
from .store import Capped, NoData, NotFound, SelectionStore

INDEX_PAGE = 1000  # campaigns a page of /
_IMAGE = re.compile(r"([0-9]{1,19})\.(svg|png)").fullmatch

class Draw:
    """The pick every banner answer makes (page, JSON, embed): the visitor, one banner
    through the store (counted as an impression of this hour and quarter: a valid one,
    or an invalid one by its reason, web/quality.py), the visitor cookie for a new
    client, and the signed click URL of what was shown.  None when the visitor reached
    the campaign's frequency cap: the caller answers an empty placement.

    Invalid traffic gets the same answer as valid traffic (a bot is never told): only
    the counter it lands in differs."""

    def __init__(self, services: Services, cookie_secure: bool, trusted_proxies: tuple):
        # Copied to attributes: one lookup each on the hot path, as before the services object.
        self.store = services.store
        self.quarter = services.quarter
        self.images = services.images
        self.metrics = services.metrics
        self.cookie_secure = cookie_secure
        self.trusted = trusted_proxies
        self.hour = services.hour
        self.signer = services.signer
        self.now = services.now
        classifier = services.classifier
        self.classify = classifier.impression if classifier is not None and classifier.enabled else None
        # The client address only when the operator's networks need it (the verdict per
        # user-agent is a dict lookup; resolving the address through proxies is not free).
        self.by_network = bool(classifier is not None and classifier.networks)

    def __call__(self, req: falcon.Request, resp: falcon.Response, campaign_id: str):
        campaign = parse_id(campaign_id)
        if campaign is None:
            raise bad_id("campaign")
        quarter = self.quarter()
        cookie, carried = visitors.cookie_from_header(req.env.get("HTTP_COOKIE"))
        # The client address (through trusted proxies) once, and only when needed: a
        # cookie-less visitor is known by it, and the operator's networks judge by it.
        address = self.address(req) if not cookie or self.by_network else None
        visitor = "c:" + cookie if cookie else self._anonymous(req, address)
        reason = None
        if self.classify is not None:
            reason = self.classify(req.method, req.env, address if self.by_network else None)
        try:
            pick = self.store.pick(quarter, campaign, visitor, carried, self.hour() if self.hour else None, reason)
        except Capped:
            self.metrics.capped(campaign)
            return None
        except NotFound:
            raise falcon.HTTPNotFound(
                title="Unknown campaign",
                description=f"Campaign {campaign} has no banners in quarter {quarter} of the hour; "
                            "/ lists the campaigns of this quarter.") from None
        except NoData as exc:
            self.metrics.degraded_answer("no_data")
            raise falcon.HTTPServiceUnavailable(
                title="No data yet", description=str(exc), retry_after=RETRY_AFTER) from None
        if pick.degraded:
            self.metrics.degraded_answer(pick.degraded)
        banner = pick.banner_id
        self.metrics.banner_served(quarter, campaign, banner)
        if reason is not None:  # the valid ones are the served ones less these (/metrics)
            self.metrics.impression(reason)
        if not cookie:
            resp.set_cookie(visitors.COOKIE, visitors.cookie_value(visitors.new_visitor_id(), banner),
                            max_age=visitors.COOKIE_MAX_AGE, path="/", secure=self.cookie_secure, http_only=True,
                            same_site="Lax")
        resp.set_header("X-Banners-Version", pick.version)
        image_url = f"/banners/{banner}.{'png' if self.images.has(banner) else 'svg'}"
        # One click URL per visitor (the tag of the visitor it was shown to): one URL
        # records one click, and a click by someone else is told apart.
        click_url = "/click/" + self.signer.sign(campaign, banner, int(self.now()), visitor)
        return campaign, quarter, banner, image_url, click_url

    def address(self, req: falcon.Request) -> str:
        return visitors.client_address(req.remote_addr or "", req.get_header("X-Forwarded-For"), self.trusted)

    def _anonymous(self, req: falcon.Request, address: str | None = None) -> str:
        return "a:" + visitors.anonymous_id(address if address is not None else self.address(req),
                                            req.user_agent or "")

    def identities(self, req: falcon.Request) -> list[str]:
        """Who a request may be, as a banner answer named it: its cookie's visitor and
        its address + User-Agent's (a banner shown to a client without a cookie was
        signed for the latter, and its click may come with the cookie set meanwhile,
        or without it where third-party cookies are blocked)."""
        cookie, _ = visitors.cookie_from_header(req.env.get("HTTP_COOKIE"))
        anonymous = self._anonymous(req)
        return ["c:" + cookie, anonymous] if cookie else [anonymous]


class CampaignResource:
    NO_STORE = {"Cache-Control": "no-store", "Vary": "Accept, Cookie, Origin"}

    def __init__(self, draw: Draw, cors: "Cors"):
        self.draw = draw
        self.cors = cors

    def on_get(self, req: falcon.Request, resp: falcon.Response, campaign_id: str) -> None:
        drawn = self.draw(req, resp, campaign_id)
        resp.set_headers(self.NO_STORE)
        if drawn is None:  # capped: nothing to place (JSON, embed.js), an empty placement (page)
            if wants_json(req):
                self.cors(req, resp)
                resp.status = falcon.HTTP_204
                return
            resp.content_type = falcon.MEDIA_HTML
            resp.set_headers(HTML_HEADERS)
            resp.text = page("No banner", '<p class="meta">No banner to show here now.</p>')
            return
        campaign, quarter, banner, image_url, click_url = drawn
        name = self.draw.store.campaign_name(campaign)
        if wants_json(req):
            self.cors(req, resp)
            resp.content_type = falcon.MEDIA_JSON
            # Integers, and URLs built from integers and base64url: only the name needs escaping.
            resp.text = (f'{{"campaign_id": {campaign}, "quarter": {quarter}, "banner_id": {banner}, '
                         f'"image_url": "{image_url}", "click_url": "{click_url}", '
                         f'"name": {"null" if name is None else json.dumps(name)}}}')
        else:
            resp.content_type = falcon.MEDIA_HTML
            resp.set_headers(HTML_HEADERS)
            title = html.escape(name) if name else f"Campaign {campaign}"
            resp.text = page(
                name or f"Campaign {campaign}",
                f'<a href="{click_url}"><img src="{image_url}" width="300" height="250" '
                f'alt="Banner {banner} of {title}"></a>'
                f'<p class="meta">{title} · quarter {quarter} · banner {banner}</p>'
                f'<p><a href="/">All campaigns</a></p>',
            )


EMBED_STYLE = "html,body{margin:0;padding:0;overflow:hidden}img{display:block;border:0}"
_EMBED_STYLE_HASH = base64.b64encode(hashlib.sha256(EMBED_STYLE.encode()).digest()).decode()


class EmbedResource:
    """A minimal document for an <iframe> of 300x250: the banner, linked to its click URL
    (opened in the top window).  Who may frame it: --frame-ancestors."""

    def __init__(self, draw: Draw, frame_ancestors: str):
        self.draw = draw
        self.headers = {
            "Cache-Control": "no-store",
            "Vary": "Cookie",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": f"default-src 'none'; img-src 'self'; style-src 'sha256-{_EMBED_STYLE_HASH}'; "
                                       f"base-uri 'none'; form-action 'none'; frame-ancestors {frame_ancestors}",
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response, campaign_id: str) -> None:
        drawn = self.draw(req, resp, campaign_id)
        resp.set_headers(self.headers)
        resp.content_type = falcon.MEDIA_HTML
        if drawn is None:  # capped: an empty placement, never an error
            resp.text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title></title>'
                         f'<style>{EMBED_STYLE}</style></head><body></body></html>')
            return
        campaign, _, banner, image_url, click_url = drawn
        name = self.draw.store.campaign_name(campaign)
        alt = html.escape(name) if name else f"Banner {banner} of campaign {campaign}"
        resp.text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{alt}</title>'
                     f'<style>{EMBED_STYLE}</style></head><body><a href="{click_url}" target="_top">'
                     f'<img src="{image_url}" width="300" height="250" alt="{alt}"></a></body></html>')


# The script web pages include (<script src=".../embed.js">): a package file, read once.
EMBED_JS = resources.files(__package__).joinpath("embed.js").read_text(encoding="utf-8")

class EmbedScriptResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = EMBED_JS.encode()
        resp.content_type = "text/javascript; charset=utf-8"
        resp.cache_control = ["public", "max-age=300"]
        resp.set_header("X-Content-Type-Options", "nosniff")


class Cors:
    """--cors-origin: which sites' pages may read the JSON answers.  A named origin gets
    credentials (the visitor cookie); `*` any origin, without them."""

    def __init__(self, origins: tuple = ()):
        self.any = "*" in origins
        self.named = frozenset(o.rstrip("/") for o in origins if o != "*")

    def __call__(self, req: falcon.Request, resp: falcon.Response) -> None:
        origin = req.env.get("HTTP_ORIGIN")
        if not origin:
            return
        if origin in self.named:
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Access-Control-Allow-Credentials", "true")
        elif self.any:
            resp.set_header("Access-Control-Allow-Origin", "*")


class BannerImageResource:
    CACHE = ["public", "max-age=86400", "immutable"]

    def __init__(self, images: ImageDir):
        self.images = images

    def on_get(self, req: falcon.Request, resp: falcon.Response, image: str) -> None:
        m = _IMAGE(image)
        if not m:
            raise falcon.HTTPNotFound(title="No such picture",
                                      description="Pictures are /banners/<id>.svg or /banners/<id>.png.")
        banner_id, ext = parse_id(m.group(1)), m.group(2)
        if banner_id is None:
            raise bad_id("banner")
        if ext == "png":
            found = self.images.get(banner_id)
            if found is None:
                raise falcon.HTTPNotFound(title="No such picture",
                                          description=f"There is no picture file for banner {banner_id}; "
                                          f"/banners/{banner_id}.svg always exists.")
            resp.data, resp.content_type = found
        else:
            resp.data, resp.content_type = banner_svg(banner_id), "image/svg+xml"
        resp.cache_control = self.CACHE
        resp.set_header("X-Content-Type-Options", "nosniff")


class IndexResource:
    def __init__(self, store: SelectionStore, quarter: Callable[[], int], admin=None):
        self.store = store
        self.quarter = quarter
        self.admin = admin  # operators (auth.AdminAuth) also get a link to each campaign's dashboard

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        quarter = self.quarter()
        every = self.store.campaigns(quarter)
        # Paged: a 100,000-campaign quarter was one 10.8 MB page (bench/operator_scale.py).
        pages = max(1, -(-len(every) // INDEX_PAGE))
        page_no = min(req.get_param_as_int("page", min_value=1) or 1, pages)
        campaigns = every[(page_no - 1) * INDEX_PAGE:page_no * INDEX_PAGE]
        names = self.store.campaign_names(campaigns)
        resp.cache_control = ["no-store"]
        if wants_json(req):
            resp.media = {"quarter": quarter, "version": self.store.version, "page": page_no, "pages": pages,
                          "campaigns": [{"campaign_id": c, "name": names.get(c),
                                         "url": f"/campaigns/{c}"} for c in campaigns]}
            return
        resp.content_type = falcon.MEDIA_HTML
        resp.set_headers(HTML_HEADERS)
        name, operator = names.get, self.admin is not None and self.admin.allowed(req)
        items = "".join(f'<li><a href="/campaigns/{c}">{html.escape(name(c) or f"Campaign {c}")}</a>'
                        + (f' · <a href="/dashboard/campaigns/{c}">dashboard</a>' if operator else "") + "</li>"
                        for c in campaigns)
        more = " · ".join(f'<a href="/?page={n}">{label}</a>' for n, label in
                          ((page_no - 1, "← previous"), (page_no + 1, "next →")) if 1 <= n <= pages and n != page_no)
        body = (f"<h1>Campaigns, quarter {quarter}</h1>"
                + (f"<ul>{items}</ul>" if items else f"<p>{self._why_empty(quarter)}</p>")
                + (f"<nav>page {page_no} of {pages} · {more}</nav>" if pages > 1 else ""))
        resp.text = page(f"Campaigns, quarter {quarter}", body)


    def _why_empty(self, quarter: int) -> str:
        if self.store.selections is None:
            return ("Nothing is published yet: run <code>banners load DATA_DIR</code> "
                    "(<code>banners sample-data DIR</code> writes an example).")
        return f"No campaign has banners in quarter {quarter} of the hour."


for _resource in (CampaignResource, EmbedResource, EmbedScriptResource, BannerImageResource, IndexResource):
    _resource.on_head = _resource.on_get  # Falcon drops the body of HEAD answers
