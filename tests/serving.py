"""Helpers to build a server over a known publication."""

import datetime as dt

import falcon.testing
import polars as pl

from banner_server.clock import quarter_of
from banner_server.config import Settings
from banner_server.layout.keys import Keys
from banner_server.web.app import create_app
from banner_server.web.auth import AdminAuth
from banner_server.web.images import ImageDir
from banner_server.web.metrics import Metrics
from banner_server.web.services import Services
from banner_server.web.store import SelectionStore
from loader.pipeline import LoadResult
from loader.publish import publish
from loader.rules import SELECTION_SCHEMA

KEYS = Keys()
# The operators' credential of every test app (auth.py), and the header that carries it.
ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def selections(rows):
    """rows: (quarter, campaign, [banner ids]) -> a selections frame."""
    recs = []
    for q, c, ids in rows:
        for rank, b in enumerate(ids):
            recs.append({"quarter": q, "campaign_id": c, "scenario": "top_clicks", "x": 0, "rank": rank,
                         "banner_id": b, "revenue": 0.0, "clicks": 1, "source": "clicks"})
    return pl.DataFrame(recs, schema=SELECTION_SCHEMA)


def publish_rows(client, rows) -> str:
    sel = selections(rows)
    result = LoadResult(files=[], selections=sel, rejects=pl.DataFrame(), summary=pl.DataFrame(), accepted_rows=sel.height)
    return publish(client, KEYS, result, {"seed": 0})


STANDARD = [(q, 7, [100 + q, 200, 300, 400, 500]) for q in (1, 2, 3, 4)] + [
    (1, 8, [800]), (2, 9, [900, 901]), (3, 10, [1000, 1001, 1002]),
]


class Clock:
    def __init__(self, minute=5):
        self.now = dt.datetime(2026, 11, 28, 10, minute, tzinfo=dt.timezone.utc)

    def __call__(self):
        return self.now

    def set(self, minute, hour=10):
        self.now = self.now.replace(hour=hour, minute=minute)


# Keywords of make_client that are settings of the app, and services of it; the others go to the store.
SETTINGS_OPTIONS = ("cors_origins", "frame_ancestors", "cookie_secure", "trusted_proxies")
SERVICE_OPTIONS = ("hour", "signer", "now", "events", "admin")


def make_client(redis_client, clock=None, images=None, metrics=None, pinned=None, **kw):
    """A falcon.testing client over a store on `redis_client`, or on the
    (client, FastRedis | None) pair of the `server_redis` fixture; keywords of
    Settings and Services go to them, the others to the store."""
    clock = clock or Clock()
    settings = Settings(**{k: kw.pop(k) for k in SETTINGS_OPTIONS if k in kw})
    service_kw = {k: kw.pop(k) for k in SERVICE_OPTIONS if k in kw}
    service_kw.setdefault("admin", AdminAuth(ADMIN_TOKEN))
    if "event_clock" in kw:  # the clock clicks and conversions are recorded at
        service_kw["clock"] = kw.pop("event_clock")
    elif "events" in service_kw:
        service_kw["clock"] = clock  # events are filed at the test's time
    if isinstance(redis_client, tuple):
        redis_client, kw["fast"] = redis_client
    store = SelectionStore(redis_client, KEYS, **kw)
    quarter = (lambda: pinned) if pinned else (lambda: quarter_of(clock()))
    services = Services(store, quarter, images=ImageDir(images), metrics=metrics or Metrics(), **service_kw)
    app = create_app(settings, services)
    return falcon.testing.TestClient(app), store
