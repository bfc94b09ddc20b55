"""What a worker answers from: the selections store, the clocks, the pictures, the
metrics, the click signer, the event store and the operators' credential.  `Services.from_settings` builds them
for a real worker; tests build a `Services` by hand and hand it to create_app."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

from ..clock import hour_source, quarter_source, system_clock
from ..config import Settings
from ..layout.events import EventStore
from ..layout.keys import Keys
from ..clients.detect import connect_client, connect_fast
from .auth import AdminAuth, load_admin_token
from .images import ImageDir
from .metrics import Metrics
from .quality import Classifier
from .store import SelectionStore
from .tokens import ClickSigner, load_secret


def _random_signer() -> ClickSigner:
    return ClickSigner(secrets.token_bytes(32))  # its tokens die with the process


@dataclass
class Services:
    """`quarter` gives the quarter of the hour to serve; `hour` (the local hour, see
    clock.hour_source) makes every banner answer an impression (None: none counted);
    `events` (None: no /click nor /conversions) records clicks and conversions at the
    time `clock` tells; `now` stamps click URLs.  `classifier` (web/quality.py; None:
    every request is valid) tells invalid impressions and clicks apart."""

    store: SelectionStore
    quarter: Callable[[], int]
    images: ImageDir = field(default_factory=lambda: ImageDir(None))
    metrics: Metrics = field(default_factory=Metrics)
    signer: ClickSigner = field(default_factory=_random_signer)
    now: Callable[[], float] = time.time
    hour: Callable[[], str] | None = None
    events: EventStore | None = None
    clock: Callable[[], dt.datetime] | None = None
    # The operators' credential (auth.py); by default one nobody knows: every operator page refused.
    admin: AdminAuth = field(default_factory=AdminAuth.random)
    classifier: Classifier | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Services":
        keys = Keys(settings.key_prefix)
        store = SelectionStore(
            # One Redis, any node of a cluster, or a Sentinel set: told apart by the URL
            # and by asking the node (clients/detect.py).
            connect_client(settings.redis_url, settings.redis_timeout, settings.redis_connect_timeout),
            keys,
            visitor_ttl=settings.visitor_ttl,
            retry_after=settings.redis_retry,
            fast=connect_fast(settings.redis_url, settings.redis_timeout, settings.redis_connect_timeout),
            keep_events=settings.keep_events,
            frequency_cap=settings.frequency_cap,
        )
        clock = system_clock(settings.tz)
        quarter = quarter_source(clock, settings.quarter, tick=time.monotonic)
        store.quarter_now = quarter  # the worker holds the snapshot of this quarter and the next only
        store.ensure_snapshot()  # says at start when there is nothing to serve yet (or no Redis)
        return cls(
            store=store,
            quarter=quarter,
            images=ImageDir(settings.images_dir),
            metrics=Metrics(settings.metrics_dir),
            signer=ClickSigner(load_secret(settings.secret, settings.state_dir)),
            hour=hour_source(clock, tick=time.monotonic) if settings.record_impressions else None,
            events=EventStore(store.r, keys, keep_events=settings.keep_events),
            clock=clock,
            admin=AdminAuth(load_admin_token(settings.admin_token, settings.state_dir)),
            # Built once per worker: its verdict cache per user-agent lives as long.
            classifier=Classifier.from_settings(settings) if settings.classify else None,
        )
