"""What operators and their tools ask: liveness, readiness, the Prometheus metrics, and
the WSGI wrapper that times every answer into them."""

from __future__ import annotations

from time import perf_counter

import falcon

from .html import RETRY_AFTER
from .metrics import Metrics
from .store import SelectionStore

# Set in the WSGI environ of every request the app answers; the server's access
# hook counts the others (answered by meinheld itself: malformed requests...).
ANSWERED_BY_APP = "banners.app"


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


for _resource in (HealthResource, ReadyResource, MetricsResource):
    _resource.on_head = _resource.on_get  # Falcon drops the body of HEAD answers


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

