"""The WSGI entry point gunicorn loads: the app built from the environment."""

from __future__ import annotations

import time

from ..web.app import create_app
from ..clock import hour_source, quarter_source, system_clock
from ..config import Settings
from ..web.images import ImageDir
from ..keys import Keys
from ..web.metrics import Metrics
from ..events import EventStore
from ..web.store import SelectionStore
from ..web.tokens import ClickSigner, load_secret
from ..topology import connect_client, connect_fast


def build(settings: Settings | None = None):
    settings = settings or Settings.from_env()
    store = SelectionStore(
        # One Redis, any node of a cluster, or a Sentinel set: told apart by the URL
        # and by asking the node (topology.py).
        connect_client(settings.redis_url, settings.redis_timeout, settings.redis_connect_timeout),
        Keys(settings.key_prefix),
        visitor_ttl=settings.visitor_ttl,
        retry_after=settings.redis_retry,
        fast=connect_fast(settings.redis_url, settings.redis_timeout, settings.redis_connect_timeout),
        keep_events=settings.keep_events,
    )
    store.ensure_snapshot()  # says at start when there is nothing to serve yet (or no Redis)
    clock = system_clock(settings.tz)
    return create_app(
        store,
        quarter_source(clock, settings.quarter, tick=time.monotonic),
        images=ImageDir(settings.images_dir),
        metrics=Metrics(settings.metrics_dir),
        cookie_secure=settings.cookie_secure,
        trusted_proxies=settings.trusted_proxies,
        hour=hour_source(clock, tick=time.monotonic) if settings.record_impressions else None,
        signer=ClickSigner(load_secret(settings.secret, settings.state_dir)),
        cors_origins=settings.cors_origins,
        frame_ancestors=settings.frame_ancestors,
        events=EventStore(store.r, Keys(settings.key_prefix), keep_events=settings.keep_events),
        clock=clock,
        postback_token=settings.postback_token,
    )


application = build()
