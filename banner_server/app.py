"""The Falcon application: small resources, everything they need passed to create_app."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import re
from time import perf_counter
from typing import Callable

import falcon

from . import visitors
from .images import ImageDir, banner_svg
from .metrics import Metrics
from .store import NoData, NotFound, SelectionStore

log = logging.getLogger("banner_server")

_ID = re.compile(r"[0-9]{1,18}").fullmatch
_IMAGE = re.compile(r"([0-9]{1,18})\.(svg|png)").fullmatch

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;background:#f6f6f4;color:#222}"
    "main{max-width:40rem}img{display:block;border-radius:4px;box-shadow:0 1px 4px #0003}"
    "p.meta{color:#555}a{color:#0645ad}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
HTML_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Only this service's own pictures and the page's one style block may load.
    "Content-Security-Policy": f"default-src 'none'; img-src 'self'; style-src 'sha256-{_STYLE_HASH}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
RETRY_AFTER = 5


def _accept_prefers_json(accept: str) -> bool:
    q_json = q_html = 0.0
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media in ("application/json", "application/*"):
            q_json = max(q_json, q)
        elif media == "text/html":
            q_html = max(q_html, q)
    return q_json > 0 and q_json >= q_html


_ACCEPT_CACHE: dict[str, bool] = {}


def wants_json(req: falcon.Request) -> bool:
    """?format=json, or an Accept that names application/json at least as high as HTML.
    No Accept, or */*, gets HTML."""
    if req.query_string:
        fmt = req.get_param("format")
        if fmt:
            return fmt.lower() == "json"
    accept = req.env.get("HTTP_ACCEPT")
    if not accept or "json" not in accept:
        return False
    # Clients send few distinct Accept values: parse each once.
    found = _ACCEPT_CACHE.get(accept)
    if found is None:
        found = _accept_prefers_json(accept)
        if len(_ACCEPT_CACHE) < 1024:
            _ACCEPT_CACHE[accept] = found
    return found


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def error_serializer(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    if wants_json(req):
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps({"error": exc.title, "detail": exc.description, "status": exc.status_code})
    else:
        resp.content_type = falcon.MEDIA_HTML
        resp.set_headers(HTML_HEADERS)
        detail = f"<p>{html.escape(exc.description)}</p>" if exc.description else ""
        resp.text = page(exc.title, f"<h1>{html.escape(exc.title)}</h1>{detail}<p><a href=\"/\">All campaigns</a></p>")
    resp.append_header("Vary", "Accept")


class CampaignResource:
    NO_STORE = {"Cache-Control": "no-store", "Vary": "Accept, Cookie"}

    def __init__(self, store: SelectionStore, quarter: Callable[[], int], images: ImageDir,
                 metrics: Metrics, cookie_secure: bool, trusted_proxies: tuple):
        self.store = store
        self.quarter = quarter
        self.images = images
        self.metrics = metrics
        self.cookie_secure = cookie_secure
        self.trusted = trusted_proxies

    def on_get(self, req: falcon.Request, resp: falcon.Response, campaign_id: str) -> None:
        if not _ID(campaign_id):
            raise falcon.HTTPBadRequest(
                title="Bad campaign id", description="A campaign id is a non-negative integer, like /campaigns/7.")
        campaign = int(campaign_id)
        quarter = self.quarter()
        cookie = visitors.cookie_from_header(req.env.get("HTTP_COOKIE"))
        if cookie:
            visitor, carry = "c:" + cookie, None
        else:
            address = visitors.client_address(req.remote_addr or "", req.get_header("X-Forwarded-For"), self.trusted)
            visitor = "a:" + visitors.anonymous_id(address, req.user_agent or "")
            cookie = visitors.new_visitor_id()
            carry = "c:" + cookie  # the new cookie carries this visitor's last banner on
            resp.set_cookie(visitors.COOKIE, cookie, max_age=visitors.COOKIE_MAX_AGE, path="/",
                            secure=self.cookie_secure, http_only=True, same_site="Lax")
        try:
            pick = self.store.pick(quarter, campaign, visitor, carry)
        except NotFound:
            raise falcon.HTTPNotFound(
                title="Unknown campaign",
                description=f"Campaign {campaign} has no banners in quarter {quarter} of the hour.") from None
        except NoData:
            # Why (Redis down, nothing loaded) is for operators: /readyz says it.
            self.metrics.degraded_answer("no_data")
            raise falcon.HTTPServiceUnavailable(
                title="No data yet", description="No banner selection is available yet; try again shortly.",
                retry_after=RETRY_AFTER) from None
        if pick.degraded:
            self.metrics.degraded_answer(pick.degraded)
        self.metrics.banner_served(campaign)
        banner = pick.banner_id
        ext = "png" if self.images.has(banner) else "svg"
        image_url = f"/banners/{banner}.{ext}"
        resp.set_headers(self.NO_STORE)
        resp.set_header("X-Banners-Version", pick.version)
        if wants_json(req):
            resp.content_type = falcon.MEDIA_JSON
            # All values are integers or built from integers: no escaping needed.
            resp.text = (f'{{"campaign_id": {campaign}, "quarter": {quarter}, '
                         f'"banner_id": {banner}, "image_url": "{image_url}"}}')
        else:
            resp.content_type = falcon.MEDIA_HTML
            resp.set_headers(HTML_HEADERS)
            resp.text = page(
                f"Campaign {campaign}",
                f'<img src="{image_url}" width="300" height="250" '
                f'alt="Banner {banner} of campaign {campaign}">'
                f'<p class="meta">Campaign {campaign} · quarter {quarter} · banner {banner}</p>'
                f'<p><a href="/">All campaigns</a></p>',
            )


class BannerImageResource:
    CACHE = ["public", "max-age=86400", "immutable"]

    def __init__(self, images: ImageDir):
        self.images = images

    def on_get(self, req: falcon.Request, resp: falcon.Response, image: str) -> None:
        m = _IMAGE(image)
        if not m:
            raise falcon.HTTPNotFound(title="No such picture",
                                      description="Pictures are /banners/<id>.svg or /banners/<id>.png.")
        banner_id, ext = int(m.group(1)), m.group(2)
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
    def __init__(self, store: SelectionStore, quarter: Callable[[], int]):
        self.store = store
        self.quarter = quarter

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        quarter = self.quarter()
        campaigns = self.store.campaigns(quarter)
        resp.cache_control = ["no-store"]
        if wants_json(req):
            resp.media = {"quarter": quarter, "version": self.store.version,
                          "campaigns": [{"campaign_id": c, "url": f"/campaigns/{c}"} for c in campaigns]}
            return
        resp.content_type = falcon.MEDIA_HTML
        resp.set_headers(HTML_HEADERS)
        items = "".join(f'<li><a href="/campaigns/{c}">Campaign {c}</a></li>' for c in campaigns)
        body = (f"<h1>Campaigns, quarter {quarter}</h1>"
                + (f"<ul>{items}</ul>" if items else "<p>No campaign has banners in this quarter yet.</p>"))
        resp.text = page(f"Campaigns, quarter {quarter}", body)


class HealthResource:
    def on_get(self, req, resp):
        resp.media = {"status": "ok"}
        resp.cache_control = ["no-store"]


class ReadyResource:
    def __init__(self, store: SelectionStore):
        self.store = store

    def on_get(self, req, resp):
        ok, info = self.store.readiness()
        resp.media = info
        resp.cache_control = ["no-store"]
        if not ok:
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", str(RETRY_AFTER))


class MetricsResource:
    def __init__(self, metrics: Metrics, store: SelectionStore):
        self.metrics = metrics
        self.store = store

    def on_get(self, req, resp):
        resp.content_type = "text/plain; version=0.0.4; charset=utf-8"
        resp.cache_control = ["no-store"]
        resp.text = self.metrics.render({"banners_worker_redis_degraded": int(self.store.degraded)})


for _resource in (CampaignResource, BannerImageResource, IndexResource, HealthResource, ReadyResource,
                  MetricsResource):
    _resource.on_head = _resource.on_get  # Falcon drops the body of HEAD answers


def _internal_error(req, resp, ex, params):
    if isinstance(ex, falcon.HTTPError):
        raise ex
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(title="Internal error", description="The error was logged.")


def route_of(path: str) -> str:
    """A low-cardinality route label for metrics."""
    if path.startswith("/campaign"):
        return "/campaigns/{id}"
    if path.startswith("/banners/"):
        return "/banners/{id}"
    if path in ("/", "/healthz", "/readyz", "/metrics"):
        return path
    return "other"


class Instrumented:
    """WSGI wrapper timing every answer; cheaper than a Falcon middleware's two hooks."""

    def __init__(self, app: falcon.App, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    def __call__(self, environ, start_response):
        start = perf_counter()
        status = "000"

        def recording_start_response(code, headers, exc_info=None):
            nonlocal status
            status = code[:3]
            return start_response(code, headers, exc_info)

        result = self.app(environ, recording_start_response)
        self.metrics.observe(route_of(environ.get("PATH_INFO", "")), status, perf_counter() - start)
        return result


def create_app(store: SelectionStore, quarter: Callable[[], int], images: ImageDir | None = None,
               metrics: Metrics | None = None, cookie_secure: bool = False, trusted_proxies: tuple = ()):
    images = images or ImageDir(None)
    metrics = metrics or Metrics()
    app = falcon.App(cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(error_serializer)
    app.add_error_handler(Exception, _internal_error)
    campaign = CampaignResource(store, quarter, images, metrics, cookie_secure, trusted_proxies)
    app.add_route("/campaigns/{campaign_id}", campaign)
    app.add_route("/campaign/{campaign_id}", campaign)
    app.add_route("/banners/{image}", BannerImageResource(images))
    app.add_route("/", IndexResource(store, quarter))
    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", ReadyResource(store))
    app.add_route("/metrics", MetricsResource(metrics, store))
    return Instrumented(app, metrics)
