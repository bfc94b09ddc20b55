"""What operators and their tools ask: liveness, readiness, the Prometheus metrics, and
the WSGI wrapper that times every answer into them.

Public: /healthz, and /readyz as ready or not with a reason code (what a load
balancer needs; no version, no error text).  Operators only (auth.py): /metrics and
/readyz?detail=1 (the version, the reason in words, the Redis error)."""

from __future__ import annotations

from time import perf_counter

import logging

import falcon

from .auth import AdminAuth
from .html import RETRY_AFTER
from .metrics import Metrics
from .store import SelectionStore

# Set in the WSGI environ of every request the app answers; the server's access
# hook counts the others (answered by meinheld itself: malformed requests...).
ANSWERED_BY_APP = "banners.app"


log = logging.getLogger("banner_server")


class HealthResource:
    def on_get(self, req, resp):
        resp.media = {"status": "ok"}
        resp.cache_control = ["no-store"]


class ReadyResource:
    """Also the fleet's clock for retention: load balancers ask every few seconds, so
    `events.maybe_prune` runs here (one worker of the fleet per period, under a lease)
    even when nobody clicks."""

    def __init__(self, store: SelectionStore, admin: AdminAuth, events=None, clock=None):
        self.store = store
        self.admin = admin
        self.events, self.clock = events, clock

    def on_get(self, req, resp):
        detail = req.get_param_as_bool("detail", default=False)
        if detail:
            self.admin.require(req)  # before any Redis work: an anonymous probe costs nothing
        ok, info = self.store.readiness()
        # The public answer: ready or not, and why as a code (see README, Operations).
        resp.media = info if detail else {"status": info["status"], "reason": info.get("code", info["status"])}
        resp.cache_control = ["no-store"]
        if not ok:
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", str(RETRY_AFTER))
        elif self.events is not None and self.clock is not None:
            try:
                self.events.maybe_prune(self.clock())
            except Exception:  # noqa: BLE001  retention must never fail a health check
                log.warning("pruning old recorded events failed; the next period tries again", exc_info=True)


class MetricsResource:
    def __init__(self, metrics: Metrics, store: SelectionStore, admin: AdminAuth):
        self.metrics = metrics
        self.store = store
        self.admin = admin

    def on_get(self, req, resp):
        self.admin.require(req)
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

