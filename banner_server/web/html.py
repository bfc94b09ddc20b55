"""The page chrome every resource shares: the style, the page helper, the headers of an
HTML answer, content negotiation (HTML or JSON) and the error pages."""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import logging

import falcon
from falcon.util import mediatypes

from ..ids import MAX_ID

log = logging.getLogger("banner_server")

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
    ".num{font-variant-numeric:tabular-nums}figure.chart{margin:.3rem 0}figcaption{font-size:.8rem;color:#555}"
    ".scroll{overflow-x:auto}form.filter{margin:.5rem 0}form.filter input{width:10rem}"
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
# Seconds a client is asked to wait before asking again when there is nothing to serve.
RETRY_AFTER = 5


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


def internal_error(req, resp, ex, params):
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(title="Internal error", description="The error was logged.")


def bad_id(kind: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(
        title=f"Bad {kind} id",
        description=f"A {kind} id is an integer from 0 to {MAX_ID}, like /campaigns/7.")
