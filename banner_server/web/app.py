"""The Falcon application: the routes over one object of services (services.py) and the
settings (config.Settings).  Tests hand create_app their own Services."""

from __future__ import annotations

import datetime as dt

import falcon

from ..config import Settings
from .banners import BannerImageResource, CampaignResource, Cors, Draw, EmbedResource, EmbedScriptResource, \
    IndexResource
from .dashboard import DashboardResource
from .html import error_serializer, internal_error, method_not_allowed, not_found
from .ops import HealthResource, Instrumented, MetricsResource, ReadyResource
from .postbacks import ConversionResource
from .services import Services
from .tracking import ClickResource


def create_app(settings: Settings, services: Services | None = None):
    """The WSGI application of one worker; `services` built from `settings` when None."""
    services = services or Services.from_settings(settings)
    store, quarter, images, metrics = services.store, services.quarter, services.images, services.metrics
    draw = Draw(services, settings.cookie_secure, settings.trusted_proxies)
    app = falcon.App(cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(error_serializer)
    app.add_error_handler(Exception, internal_error)
    app.add_error_handler(falcon.HTTPRouteNotFound, not_found)
    app.add_error_handler(falcon.HTTPMethodNotAllowed, method_not_allowed)
    campaign = CampaignResource(draw, Cors(settings.cors_origins))
    app.add_route("/campaigns/{campaign_id}", campaign)
    app.add_route("/campaign/{campaign_id}", campaign)
    embed = EmbedResource(draw, settings.frame_ancestors)
    app.add_route("/campaigns/{campaign_id}/embed", embed)
    app.add_route("/campaign/{campaign_id}/embed", embed)
    app.add_route("/embed.js", EmbedScriptResource())
    if services.events is not None:
        now = services.now
        clock = services.clock or (lambda: dt.datetime.fromtimestamp(now()).astimezone())

        def landing(campaign: int):
            store.ensure_snapshot()  # a worker that has served nothing yet still knows the landing pages
            return store.landing(campaign)

        app.add_route("/click/{token}", ClickResource(services.events, services.signer, landing, clock,
                                                         visitor=draw.identities, classifier=services.classifier,
                                                         metrics=metrics, address=draw.address))
        app.add_route("/conversions", ConversionResource(services.events, settings.postback_token, clock,
                                                             settings.postback_tokens))
    app.add_route("/banners/{image}", BannerImageResource(images))
    app.add_route("/", IndexResource(store, quarter, services.admin))
    app.add_route("/healthz", HealthResource())
    # Operator pages: the admin credential first (auth.py); /readyz only for ?detail=1.
    event_clock = (services.clock or (lambda: dt.datetime.fromtimestamp(services.now()).astimezone())
                   if services.events is not None else None)
    app.add_route("/readyz", ReadyResource(store, services.admin, services.events, event_clock))
    app.add_route("/metrics", MetricsResource(metrics, store, services.admin))
    dashboard = DashboardResource(services)
    app.add_route("/dashboard", dashboard)
    app.add_route("/dashboard/campaigns/{campaign_id}", dashboard, suffix="campaign")
    return Instrumented(app, metrics)
