"""The Falcon application: small resources, everything they need passed to create_app."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import html
import json
import logging
import re
import secrets
import time
from time import perf_counter
from typing import Callable

import falcon
from falcon.util import mediatypes

from . import visitors
from .dashboard import DashboardResource
from .layout.events import EventStore
from .ids import MAX_ID, parse_id
from .images import ImageDir, banner_svg
from .metrics import Metrics
from .store import NoData, NotFound, SelectionStore
from .tokens import ClickSigner
from .tracking import ClickResource, ConversionResource

log = logging.getLogger("banner_server")

_IMAGE = re.compile(r"([0-9]{1,19})\.(svg|png)").fullmatch

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1rem;background:#f6f6f4;color:#222}"
    "main{max-width:60rem;margin:auto}img{display:block;border-radius:4px;box-shadow:0 1px 4px #0003}"
    "p.meta,.meta{color:#555}a{color:#0645ad}nav{margin:.5rem 0 1rem}"
    "section.campaign{background:#fff;border-radius:6px;padding:.5rem .75rem;margin:.75rem 0;"
    "box-shadow:0 1px 3px #0002;overflow-x:auto}"
    "h3{margin:.25rem 0 .5rem;font-size:1.05rem}.tag{font-size:.8rem;background:#e8eefc;border-radius:3px;"
    "padding:.1rem .4rem;margin-left:.4rem}table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;padding:.2rem .4rem;border-bottom:1px solid #eee;vertical-align:middle;"
    "font-size:.9rem}td img{box-shadow:none}meter{width:6rem;margin-right:.3rem}"
    ".num{font-variant-numeric:tabular-nums}"
    "@media (max-width:600px){meter{width:3.5rem}th,td{padding:.15rem .25rem;font-size:.8rem}"
    "td img{width:48px;height:40px}.rule{display:none}}"
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
# Set in the WSGI environ of every request the app answers; the server's access
# hook counts the others (answered by meinheld itself: malformed requests...).
ANSWERED_BY_APP = "banners.app"


@functools.lru_cache(maxsize=1024)  # bounded, and any client's values age out
def _accept_prefers_json(accept: str) -> bool:
    """JSON when the Accept header ranks application/json at least as high as HTML
    (media types are case-insensitive; Falcon's matcher is not, hence lower())."""
    accept = accept.lower()
    if "json" not in accept and "application/" not in accept:
        return False  # no Accept, */*, text/html...: HTML without parsing
    try:
        q_json = mediatypes.quality("application/json", accept)
        q_html = mediatypes.quality("text/html", accept)
    except ValueError:  # a malformed Accept header: the default, HTML
        return False
    return q_json > 0 and q_json >= q_html


def wants_json(req: falcon.Request) -> bool:
    """?format=json, or an Accept that names application/json at least as high as HTML.
    No Accept, or */*, gets HTML."""
    if req.query_string:
        fmt = req.get_param("format")
        if fmt:
            return fmt.lower() == "json"
    accept = req.env.get("HTTP_ACCEPT")
    return bool(accept) and _accept_prefers_json(accept)


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def error_serializer(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    # An error is about this request only: never cached, and it sets no cookie.
    resp.cache_control = ["no-store"]
    if wants_json(req):
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps({"error": exc.title, "detail": exc.description, "status": exc.status_code})
    else:
        resp.content_type = falcon.MEDIA_HTML
        resp.set_headers(HTML_HEADERS)
        detail = f"<p>{html.escape(exc.description)}</p>" if exc.description else ""
        resp.text = page(exc.title, f"<h1>{html.escape(exc.title)}</h1>{detail}<p><a href=\"/\">All campaigns</a></p>")
    resp.append_header("Vary", "Accept")


ROUTES_HELP = ("This service answers GET /campaigns/{id} (one banner of a campaign), /campaigns/{id}/embed, "
               "/embed.js, /banners/{id}.svg, /click/{token}, / (the campaigns of the current quarter), "
               "/dashboard, /healthz, /readyz, /metrics, and POST /conversions.")


def not_found(req, resp, ex, params):
    raise falcon.HTTPNotFound(title="Not found", description=f"There is nothing at {req.path}. {ROUTES_HELP}")


def method_not_allowed(req, resp, ex, params):
    raise falcon.HTTPMethodNotAllowed(
        ex.headers["Allow"].split(", ") if ex.headers and "Allow" in ex.headers else ["GET", "HEAD"],
        title="Method not allowed",
        description=f"{req.method} is not answered at {req.path}: " + (
            "postbacks are POST /conversions." if req.path == "/conversions" else "use GET (or HEAD); only "
            "POST /conversions takes a body."))


def bad_id(kind: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(
        title=f"Bad {kind} id",
        description=f"A {kind} id is an integer from 0 to {MAX_ID}, like /campaigns/7.")


class Draw:
    """The pick every banner answer makes (page, JSON, embed): the visitor, one banner
    through the store (counted as an impression of this hour and quarter), the visitor
    cookie for a new client, and the signed click URL of what was shown."""

    def __init__(self, store: SelectionStore, quarter: Callable[[], int], images: ImageDir, metrics: Metrics,
                 cookie_secure: bool, trusted_proxies: tuple, hour: Callable[[], str] | None,
                 signer: ClickSigner, now: Callable[[], float]):
        self.store = store
        self.quarter = quarter
        self.images = images
        self.metrics = metrics
        self.cookie_secure = cookie_secure
        self.trusted = trusted_proxies
        self.hour = hour
        self.signer = signer
        self.now = now

    def __call__(self, req: falcon.Request, resp: falcon.Response, campaign_id: str):
        campaign = parse_id(campaign_id)
        if campaign is None:
            raise bad_id("campaign")
        quarter = self.quarter()
        cookie, carried = visitors.cookie_from_header(req.env.get("HTTP_COOKIE"))
        if cookie:
            visitor = "c:" + cookie
        else:
            address = visitors.client_address(req.remote_addr or "", req.get_header("X-Forwarded-For"), self.trusted)
            visitor = "a:" + visitors.anonymous_id(address, req.user_agent or "")
        try:
            pick = self.store.pick(quarter, campaign, visitor, carried, self.hour() if self.hour else None)
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
        if not cookie:
            resp.set_cookie(visitors.COOKIE, visitors.cookie_value(visitors.new_visitor_id(), banner),
                            max_age=visitors.COOKIE_MAX_AGE, path="/", secure=self.cookie_secure, http_only=True,
                            same_site="Lax")
        resp.set_header("X-Banners-Version", pick.version)
        image_url = f"/banners/{banner}.{'png' if self.images.has(banner) else 'svg'}"
        click_url = "/click/" + self.signer.sign(campaign, banner, int(self.now()), visitor)  # one URL per visitor
        return campaign, quarter, banner, image_url, click_url


class CampaignResource:
    NO_STORE = {"Cache-Control": "no-store", "Vary": "Accept, Cookie, Origin"}

    def __init__(self, draw: Draw, cors: "Cors"):
        self.draw = draw
        self.cors = cors

    def on_get(self, req: falcon.Request, resp: falcon.Response, campaign_id: str) -> None:
        campaign, quarter, banner, image_url, click_url = self.draw(req, resp, campaign_id)
        resp.set_headers(self.NO_STORE)
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
        campaign, _, banner, image_url, click_url = self.draw(req, resp, campaign_id)
        name = self.draw.store.campaign_name(campaign)
        resp.set_headers(self.headers)
        resp.content_type = falcon.MEDIA_HTML
        alt = html.escape(name) if name else f"Banner {banner} of campaign {campaign}"
        resp.text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{alt}</title>'
                     f'<style>{EMBED_STYLE}</style></head><body><a href="{click_url}" target="_top">'
                     f'<img src="{image_url}" width="300" height="250" alt="{alt}"></a></body></html>')


EMBED_JS = r"""(function () {
  // <script src="https://BANNERS/embed.js" data-campaign="7" async></script>: replaced by
  // the campaign's banner, linked to its click URL.  Several placements per page work.
  function place(script) {
    if (!script || script.getAttribute("data-banners-placed")) return;
    script.setAttribute("data-banners-placed", "1");
    var base = new URL(script.src, document.baseURI);
    var url = new URL("/campaigns/" + encodeURIComponent(script.getAttribute("data-campaign")) +
                      "?format=json", base);
    // With credentials, so the visitor cookie counts (the service must name this site's
    // origin in --cort-origin); a service answering any origin (*) gets a plain request.
    fetch(url, {credentials: "include"})
      .catch(function () { return fetch(url, {credentials: "omit"}); })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (d) {
        var a = document.createElement("a");
        a.href = new URL(d.click_url, base).href;
        var img = document.createElement("img");
        img.src = new URL(d.image_url, base).href;
        img.width = 300; img.height = 250;
        img.alt = d.name || ("Banner " + d.banner_id);
        a.appendChild(img);
        script.parentNode.replaceChild(a, script);
      })
      .catch(function () { if (script.parentNode) script.parentNode.removeChild(script); });
  }
  if (document.currentScript) place(document.currentScript);
  var all = document.querySelectorAll("script[data-campaign]");
  for (var i = 0; i < all.length; i++) if (/\/embed\.js(\?|$)/.test(all[i].src)) place(all[i]);
})();
""".replace("--cort-origin", "--cors-origin")


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
    def __init__(self, store: SelectionStore, quarter: Callable[[], int]):
        self.store = store
        self.quarter = quarter

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        quarter = self.quarter()
        campaigns = self.store.campaigns(quarter)
        resp.cache_control = ["no-store"]
        if wants_json(req):
            resp.media = {"quarter": quarter, "version": self.store.version,
                          "campaigns": [{"campaign_id": c, "name": self.store.campaign_name(c),
                                         "url": f"/campaigns/{c}"} for c in campaigns]}
            return
        resp.content_type = falcon.MEDIA_HTML
        resp.set_headers(HTML_HEADERS)
        name = self.store.campaign_name
        items = "".join(f'<li><a href="/campaigns/{c}">Campaign {c}'
                        f'{" — " + html.escape(name(c)) if name(c) else ""}</a></li>' for c in campaigns)
        body = (f"<h1>Campaigns, quarter {quarter}</h1>"
                + (f"<ul>{items}</ul>" if items else f"<p>{self._why_empty(quarter)}</p>"))
        resp.text = page(f"Campaigns, quarter {quarter}", body)


    def _why_empty(self, quarter: int) -> str:
        if self.store.selections is None:
            return ("Nothing is published yet: run <code>banners load DATA_DIR</code> "
                    "(<code>banners sample-data DIR</code> writes an example).")
        return f"No campaign has banners in quarter {quarter} of the hour."


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


for _resource in (CampaignResource, EmbedResource, EmbedScriptResource, BannerImageResource, IndexResource,
                  HealthResource, ReadyResource, MetricsResource):
    _resource.on_head = _resource.on_get  # Falcon drops the body of HEAD answers


def _internal_error(req, resp, ex, params):
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(title="Internal error", description="The error was logged.")


def route_of(path: str) -> str:
    """A low-cardinality route label for metrics."""
    if path.startswith("/campaign"):
        return "/campaigns/{id}/embed" if path.endswith("/embed") else "/campaigns/{id}"
    if path.startswith("/banners/"):
        return "/banners/{id}"
    if path.startswith("/click/"):
        return "/click/{token}"
    if path in ("/", "/healthz", "/readyz", "/metrics", "/dashboard", "/embed.js", "/conversions"):
        return path
    return "other"


class Instrumented:
    """WSGI wrapper timing every answer; cheaper than a Falcon middleware's two hooks."""

    def __init__(self, app: falcon.App, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    def __call__(self, environ, start_response):
        start = perf_counter()
        environ[ANSWERED_BY_APP] = True
        status = "000"

        def recording_start_response(code, headers, exc_info=None):
            nonlocal status
            status = code[:3]
            return start_response(code, headers, exc_info)

        result = self.app(environ, recording_start_response)
        self.metrics.observe(route_of(environ.get("PATH_INFO", "")), status, perf_counter() - start)
        return result


def create_app(store: SelectionStore, quarter: Callable[[], int], images: ImageDir | None = None,
               metrics: Metrics | None = None, cookie_secure: bool = False, trusted_proxies: tuple = (),
               hour: Callable[[], str] | None = None, signer: ClickSigner | None = None,
               now: Callable[[], float] = time.time, cors_origins: tuple = (), frame_ancestors: str = "*",
               events: EventStore | None = None, clock: Callable[[], dt.datetime] | None = None,
               postback_token: str | None = None):
    """`hour` (the local hour, see clock.hour_source) makes every banner answer an
    impression; `signer` signs click URLs (a random secret when None: tokens then die
    with the process)."""
    images = images or ImageDir(None)
    metrics = metrics or Metrics()
    signer = signer or ClickSigner(secrets.token_bytes(32))
    draw = Draw(store, quarter, images, metrics, cookie_secure, trusted_proxies, hour, signer, now)
    app = falcon.App(cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(error_serializer)
    app.add_error_handler(Exception, _internal_error)
    app.add_error_handler(falcon.HTTPRouteNotFound, not_found)
    app.add_error_handler(falcon.HTTPMethodNotAllowed, method_not_allowed)
    campaign = CampaignResource(draw, Cors(cors_origins))
    app.add_route("/campaigns/{campaign_id}", campaign)
    app.add_route("/campaign/{campaign_id}", campaign)
    embed = EmbedResource(draw, frame_ancestors)
    app.add_route("/campaigns/{campaign_id}/embed", embed)
    app.add_route("/campaign/{campaign_id}/embed", embed)
    app.add_route("/embed.js", EmbedScriptResource())
    if events is not None:
        clock = clock or (lambda: dt.datetime.fromtimestamp(now()).astimezone())

        def landing(campaign: int):
            store.ensure_snapshot()  # a worker that has served nothing yet still knows the landing pages
            return store.landing(campaign)

        app.add_route("/click/{token}", ClickResource(events, signer, landing, clock, page, HTML_HEADERS))
        app.add_route("/conversions", ConversionResource(events, postback_token, clock))
    app.add_route("/banners/{image}", BannerImageResource(images))
    app.add_route("/", IndexResource(store, quarter))
    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", ReadyResource(store))
    app.add_route("/metrics", MetricsResource(metrics, store))
    app.add_route("/dashboard", DashboardResource(store, quarter, metrics, images, wants_json, page, HTML_HEADERS))
    return Instrumented(app, metrics)
