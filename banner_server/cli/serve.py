"""`banners serve`: check every setting, then become gunicorn with meinheld workers.

Every option is a BANNERS_* variable (config.VARIABLES); the checked values are
handed on as those variables, so gunicorn's master and each worker read them there
(config.Settings.from_env).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

import redis

import banner_server
from banner_server import config
from banner_server.bind import bind_problem, describe
from banner_server.layout.catalog import read_selections
from banner_server.web.auth import load_admin_token, token_path
from banner_server.web.images import ImageDir
from banner_server.text import clean

from .common import (EXIT_USAGE, connect, fail, flag_setting_option, keys, redis_options, safe_url, setting_option,
                     warn)


def _variables_without_option() -> str:
    rows = [(f"{v.name}={v.default}", v.doc.replace("`", "")) for v in config.VARIABLES.values()
            if not v.option and v is not config.METRICS_DIR]  # serve sets that one itself
    width = max(len(name) for name, _ in rows)
    return "\b\nVariables without an option (README.md lists every variable):\n" + "\n".join(
        f"  {name:<{width}}  {doc}" for name, doc in rows)


@click.command(epilog=_variables_without_option())
@setting_option("--bind", config.BIND, metavar="ADDRESS",
                help="HOST[:PORT] (port 8000 when none), tcp://HOST:PORT, [IPv6]:PORT or unix:PATH.")
@setting_option("--workers", config.WORKERS, metavar="N", help="gunicorn worker processes [default: two per core].")
@setting_option("--quarter", config.QUARTER, metavar="1-4", help="Serve this quarter whatever the time (demos, tests).")
@setting_option("--images", config.IMAGES, metavar="DIR",
                help="Folder of image_<id>.png pictures, served as /banners/<id>.png instead of generated SVGs.")
@setting_option("--tz", config.TZ, metavar="ZONE",
                help="Time zone of the quarter, an IANA name like Asia/Kathmandu [default: the system's].")
@setting_option("--visitor-ttl", config.VISITOR_TTL, metavar="SECONDS",
                help="Seconds a visitor's last banner is remembered in Redis.")
@flag_setting_option("--cookie-secure", config.COOKIE_SECURE, help="Mark the visitor cookie Secure (behind HTTPS).")
@setting_option("--trusted-proxy", config.TRUSTED_PROXIES, parse=config.parse_network, multiple=True,
                metavar="CIDR", help="Believe X-Forwarded-For from this proxy network (repeatable; in the "
                "variable, separated by commas).")
@setting_option("--access-log", config.ACCESS_LOG, metavar="PATH",
                help="Log every request to this file ('-' for standard output).")
@setting_option("--cors-origin", config.CORS_ORIGINS, parse=config.parse_origin, multiple=True, metavar="ORIGIN",
                help="Let this site's pages read the JSON answers with the visitor cookie (repeatable; `*`: "
                "any site, without the cookie). embed.js needs it.")
@setting_option("--frame-ancestors", config.FRAME_ANCESTORS, metavar="SOURCES",
                help="Who may frame /campaigns/<id>/embed (CSP frame-ancestors), e.g. https://shop.example.")
@setting_option("--log-format", config.LOG_FORMAT, metavar="text|json",
                help="text for people, json for machines: one JSON object a line.")
@setting_option("--keep-events", config.KEEP_EVENTS, metavar="SECONDS",
                help="Seconds recorded impressions, clicks and conversions are kept for `banners export`.")
@redis_options
@click.pass_context
def serve(ctx: click.Context, **options):
    """Serve banners over HTTP with gunicorn and meinheld workers.

    \b
    GET  /campaigns/<id>        one banner of the campaign (HTML, or JSON with
                                Accept: application/json or ?format=json);
                                also /campaign/<id>
    GET  /campaigns/<id>/embed  the banner as a page to put in an iframe
    GET  /embed.js              a script that shows a campaign's banner on
                                another site (with --cors-origin)
    GET  /banners/<id>.svg      the banner's picture (.png with --images)
    GET  /click/<token>         counts the click, then goes to the landing page
    POST /conversions           a conversion postback (Bearer BANNERS_POSTBACK_TOKEN)
    GET  /dashboard             what each campaign serves, and how it does
    GET  /  /healthz  /readyz  /metrics

    Every option is also a BANNERS_* variable (below, those without an option).
    INT or TERM stops it within about a second; HUP replaces the workers.

    \b
    Example:
      banners serve --bind 0.0.0.0:8000 --workers 4 --images ../shared/datachef/images
    """
    bind, redis_url, state_dir = options["bind"], options["redis_url"], options["state_dir"]
    address = describe(bind)
    problem = bind_problem(bind)
    if problem:
        fail(f"cannot listen on {address.removeprefix('http://')}: {problem}")
    # Each option is its variable (`envvar`): handed on as the text the variable reads.
    env = {p.envvar: config.as_text(options[p.name]) for p in ctx.command.params if p.envvar in config.VARIABLES}
    env[config.METRICS_DIR.name] = str((state_dir / "metrics").resolve())
    try:
        config.check({**os.environ, **env})  # what gunicorn and each worker will read: fail here, not in N workers
    except config.SettingError as exc:
        fail(f"bad setting: {exc}", EXIT_USAGE)
    url, client = connect(redis_url, state_dir)  # only once everything else is known to be right
    _say_what_will_be_served(client, options["images"])
    client.close()
    env[config.REDIS_URL.name] = url
    os.environ.update(env)
    click.echo(f"serving on {address} (Redis {safe_url(url)})", err=True)
    if not config.ADMIN_TOKEN.get():
        # Made now rather than by the first worker, so this line can say where it is.
        load_admin_token(None, state_dir)
        click.echo(f"operator pages (/dashboard, /metrics): the token is in {clean(token_path(state_dir))}", err=True)
    sys.stderr.flush()
    # The settings live in the package, so an installed wheel serves as a checkout does.
    conf = Path(banner_server.__file__).resolve().parent / "hosting" / "gunicorn_conf.py"
    os.execv(sys.executable, [sys.executable, "-m", "banner_server.hosting.gunicorn_run", "-c", str(conf)])


def _say_what_will_be_served(client, images: Path | None) -> None:
    """Start-up notes on what the workers will find: nothing published yet, or a
    pictures folder that holds few of the published banners' pictures."""
    try:
        version, records = read_selections(client, keys())
    except redis.RedisError:
        return
    if version is None:
        warn("nothing is published yet: campaign pages answer 503 until `banners load DATA_DIR` publishes "
             "(`banners sample-data DIR` writes an example)")
        return
    if images:
        banners = {b["banner_id"] for r in records for b in r["banners"]}
        pictures = ImageDir(images)
        have = sum(1 for b in banners if pictures.has(b))
        message = f"pictures: {have} of the {len(banners)} published banners have an image_<id>.png in {clean(images)}"
        if have < len(banners):
            message += "; the others are served as generated SVGs"
        warn(message) if have < len(banners) else click.echo(message, err=True)
