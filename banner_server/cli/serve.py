"""`banners serve`: check every setting, then become gunicorn with meinheld workers.

Every option is a BANNERS_* variable (config.VARIABLES); the checked values are
handed on as those variables, so gunicorn's master and each worker read them there
(config.Settings.from_env).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import tempfile
from pathlib import Path

import click

import redis

import banner_server
from banner_server import checks, config
from banner_server.bind import bind_problem, describe
from banner_server.clients.errors import CLIENT_ERRORS
from banner_server.layout.catalog import read_selections
from banner_server.web.auth import load_admin_token, token_path
from banner_server.web.images import ImageDir
from banner_server.text import clean
from banner_server.web.tokens import SecretError, fingerprint, load_secret

from .common import (EXIT_FAILED, EXIT_USAGE, connect, fail, flag_setting_option, keys, redis_options, safe_url, setting_option,
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
@setting_option("--trusted-proxy", config.TRUSTED_PROXIES, parse=checks.parse_network, multiple=True,
                metavar="CIDR", help="Believe X-Forwarded-For from this proxy network (repeatable; in the "
                "variable, separated by commas).")
@setting_option("--access-log", config.ACCESS_LOG, metavar="PATH",
                help="Log every request to this file ('-' for standard output).")
@setting_option("--cors-origin", config.CORS_ORIGINS, parse=checks.parse_origin, multiple=True, metavar="ORIGIN",
                help="Let this site's pages read the JSON answers with the visitor cookie (repeatable; `*`: "
                "any site, without the cookie). embed.js needs it.")
@setting_option("--frame-ancestors", config.FRAME_ANCESTORS, metavar="SOURCES",
                help="Who may frame /campaigns/<id>/embed (CSP frame-ancestors), e.g. https://shop.example.")
@setting_option("--log-format", config.LOG_FORMAT, metavar="text|json",
                help="text for people, json for machines: one JSON object a line.")
@setting_option("--keep-events", config.KEEP_EVENTS, metavar="SECONDS",
                help="Seconds recorded impressions, clicks and conversions are kept for `banners export`.")
@setting_option("--rotate-secret", config.ROTATE_SECRET, metavar="FINGERPRINT",
                help="After changing BANNERS_SECRET on purpose: the old secret's fingerprint (serve's refusal "
                "shows it); this host's secret replaces it in Redis. Without it, serve refuses to start when "
                "another host recorded a different secret.")
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
    # Everything that could stop a worker from booting is checked here, before
    # `serving on` (it used to be a traceback in every worker, after it).
    _writable_folder(state_dir, "state folder (--state-dir)")
    _writable_folder(state_dir / "metrics", "metrics folder")
    try:
        secret = load_secret(config.SECRET.get({**os.environ, **env}), state_dir)
    except SecretError as exc:
        fail(clean(str(exc)), EXIT_FAILED if exc.environment else EXIT_USAGE)
    admin_token_file = None
    if not config.ADMIN_TOKEN.get({**os.environ, **env}):
        # Made now rather than by the first worker (before `serving on`, like every
        # check that can fail), so the start can say where it is.
        try:
            load_admin_token(None, state_dir)
        except OSError as exc:
            fail(f"cannot make the operators' token in {clean(token_path(state_dir))}: {exc.strerror or exc} "
                 "(or set BANNERS_ADMIN_TOKEN)")
        admin_token_file = token_path(state_dir)
    url, client = connect(redis_url, state_dir)  # only once everything else is known to be right
    _check_fleet_secret(client, secret, options["rotate_secret"])
    _say_what_will_be_served(client, options["images"])
    client.close()
    env[config.REDIS_URL.name] = url
    os.environ.update(env)
    click.echo(f"serving on {address} (Redis {safe_url(url)})", err=True)
    if admin_token_file:
        click.echo(f"operator pages (/dashboard, /metrics): the token is in {clean(admin_token_file)}", err=True)
    sys.stderr.flush()
    # The settings live in the package, so an installed wheel serves as a checkout does.
    conf = Path(banner_server.__file__).resolve().parent / "hosting" / "gunicorn_conf.py"
    os.execv(sys.executable, [sys.executable, "-m", "banner_server.hosting.gunicorn_run", "-c", str(conf)])


def _writable_folder(path: Path, what: str) -> None:
    """`path` is a folder this process can write in (made 0700 when missing), or exit:
    2 when something else is where it should be, 1 when the system refuses."""
    if path.exists() and not path.is_dir():
        fail(f"the {what} {clean(path)} is not a folder", EXIT_USAGE)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Tried, not asked (os.access): root, ACLs and read-only mounts answer differently.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check."):
            pass
    except FileExistsError:
        fail(f"the {what} {clean(path)} cannot be made: a file is in its way", EXIT_USAGE)
    except NotADirectoryError:
        fail(f"the {what} {clean(path)} cannot be made: part of its path is a file", EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot write in the {what} {clean(path)}: {exc.strerror or exc}")


def signing_key() -> str:
    """Redis hash of the deployment's signing secret: fingerprint, host, since."""
    return keys().control + "signing"


def _check_fleet_secret(client, secret: bytes, rotate: str | None, now=None) -> None:
    """Every host behind one load balancer must sign click URLs with the same secret, or
    a click made on one answers 400 on the others.  The first server records its
    secret's fingerprint in Redis; a server with another one refuses to start (exit 2),
    saying which host recorded it.  `rotate` (--rotate-secret) names the recorded
    fingerprint this host's replaces: only that one, so the option left set after a
    rotation cannot move the deployment back to an old secret."""
    mine = fingerprint(secret)
    host = socket.gethostname()
    since = (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
    record = {"fingerprint": mine, "host": host, "since": since}
    key = signing_key()
    try:
        try:
            if client.hsetnx(key, "fingerprint", mine):
                client.hset(key, mapping=record)
                return
        except redis.ResponseError as exc:
            # A Redis that refuses writes (a full disk: MISCONF; its memory cap: OOM)
            # still serves what it holds: start degraded, as the workers do, and
            # compare with what is recorded (a read works).
            if not str(exc).startswith(("MISCONF", "OOM")):
                raise
            warn(f"Redis refuses writes ({str(exc).split(' ', 1)[0]}): this host's signing secret could not be "
                 "recorded; serving what Redis holds")
        recorded = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
        if not recorded:
            return
        if recorded.get("fingerprint") != mine and rotate and recorded.get("fingerprint") == rotate:
            client.hset(key, mapping=record)
            warn(f"the deployment's signing secret is now this host's (fingerprint {mine}, was {rotate}): click "
                 "URLs made with the old one answer 400 here; restart every other host with the new secret (with "
                 "the old one they refuse to start)")
            return
    except CLIENT_ERRORS as exc:
        fail(f"cannot check the deployment's signing secret in Redis: {exc}")
    theirs = recorded.get("fingerprint", "?")
    if theirs == mine:
        return
    other = recorded.get("host") or "another host"
    fail(f"this host ({clean(host)}) signs click URLs with another secret than the one {clean(other)} recorded "
         f"in Redis{' on ' + clean(recorded['since']) if recorded.get('since') else ''} (fingerprints {mine} here, "
         f"{clean(theirs)} there): a click made on one host would answer 400 on the other. Give every host the "
         f"deployment's BANNERS_SECRET; if the secret was changed on purpose, start this host once with "
         f"`banners serve --rotate-secret {clean(theirs)}`", EXIT_USAGE)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
