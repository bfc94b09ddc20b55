"""`banners`: the command line of the banner server (sample-data, load, show, status, serve).

Each command is a thin shell over the packages: `loader` computes and publishes,
`banner_server` serves.  Without --redis-url the commands share an embedded Redis
kept in the state folder (BANNERS_STATE_DIR, default ./var).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import sys
from pathlib import Path

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
# The generator holds a whole quarter in memory: x100 is 80 M rows, 660 MB of CSV and
# a 1.2 GB peak; far beyond that a laptop runs out of memory, not of patience.
MAX_SAMPLE_SCALE = 100.0


def _redis_options(fn):
    fn = click.option(
        "--state-dir",
        envvar="BANNERS_STATE_DIR",
        default="var",
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Folder of the embedded Redis, its data and the reject log (env BANNERS_STATE_DIR).",
    )(fn)
    fn = click.option(
        "--redis-url",
        envvar="BANNERS_REDIS_URL",
        default=None,
        metavar="URL",
        help="redis://, rediss:// or unix:// URL (env BANNERS_REDIS_URL). "
        "Default: the embedded Redis, started on demand.",
    )(fn)
    return fn


def fail(message: str, code: int = EXIT_FAILED):
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def connect(redis_url: str | None, state_dir: Path):
    """A client for --redis-url or the embedded instance; exits 1 with a message on failure."""
    import redis
    from redis.connection import parse_url

    from banner_server.embedded_redis import EmbeddedRedisError, resolve_redis_url

    if redis_url:
        try:
            parse_url(redis_url)  # a malformed URL is a usage error, not an unreachable Redis
        except ValueError as exc:
            raise click.BadParameter(f"{_safe_url(redis_url)}: {exc}", param_hint="--redis-url") from None
    try:
        url = resolve_redis_url(redis_url, state_dir)
        client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
        client.ping()
    except (EmbeddedRedisError, OSError, ValueError) as exc:
        fail(f"cannot start the embedded Redis: {exc}")
    except redis.RedisError as exc:
        fail(f"cannot reach Redis at {_safe_url(url)}: {exc}")
    return url, client


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _keys():
    from banner_server.keys import Keys

    return Keys(os.environ.get("BANNERS_KEY_PREFIX", "banners:"))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="banner-server")
def main():
    """Pick each campaign's best banners per quarter of an hour, and serve them.

    \b
    Typical session:
      banners sample-data data/           # or your marketing exports
      banners load data/ --seed 7         # validate, compute, publish
      banners show --campaign 7           # what was selected
      banners serve --bind 127.0.0.1:8000
    """


@main.command("sample-data")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=1, show_default=True,
              help="Seed of the generator.")
@click.option("--scale", type=click.FloatRange(min=0.0001, max=MAX_SAMPLE_SCALE), default=1.0, show_default=True,
              help="Multiplies the row counts (1.0: like the real set, ~800k rows).")
@_redis_options
def sample_data(out_dir: Path, seed: int, scale: float, redis_url, state_dir):
    """Write a realistic data set into OUT_DIR/{1,2,3,4}/.

    Campaigns 1-50, banners 100-500, the real set's row counts times --scale, with
    campaigns in every scenario, ties and a few duplicate rows.  (It takes
    --redis-url like every command, and does not use Redis.)

    \b
    Example:
      banners sample-data data/ --seed 3 --scale 0.1
    """
    from loader.sample_data import write_sample

    try:
        paths = write_sample(out_dir, seed=seed, scale=scale)
    except OSError as exc:
        fail(f"cannot write the sample data under {out_dir}: {exc.strerror or exc}")
    click.echo(f"wrote {len(paths)} files under {out_dir} (seed {seed}, scale {scale})")


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=None,
              help="Seed of the random fill; default: a new one, printed and stored.")
@click.option("--reject-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where rejected rows go, one JSON line each [default: STATE_DIR/rejected.jsonl].")
@click.option("--strict", is_flag=True, help="Publish nothing if any input is invalid.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@_redis_options
def load(data_dir: Path, seed, reject_log, strict, quiet, redis_url, state_dir):
    """Validate every *.csv under DATA_DIR, compute the selections, publish them.

    Quarter of a file: its nearest parent folder named 1-4, else a _1.._4 suffix.
    Kind: its header.  Duplicate files and rows, conflicts, orphan conversions and
    malformed rows are rejected into the reject log; the folder as a whole replaces
    what was published before, atomically.

    \b
    Exit status: 0 published; 3 published, but some input was invalid;
                 1 nothing published; 2 usage.
    \b
    Example:
      banners load ../shared/datachef/csv --seed 42 --reject-log rejects.jsonl
    """
    from loader.pipeline import compute

    seed = secrets.randbelow(2**31) if seed is None else seed
    click.echo(f"seed: {seed}")
    show_progress = not quiet and sys.stderr.isatty()
    total = sum(p.stat().st_size for p in data_dir.rglob("*.csv") if p.is_file())
    if show_progress:
        with click.progressbar(length=total, label="reading", file=sys.stderr) as bar:
            result = compute(data_dir, seed, progress=bar.update)
    else:
        result = compute(data_dir, seed)

    reject_log = reject_log or state_dir / "rejected.jsonl"
    try:
        reject_log.parent.mkdir(parents=True, exist_ok=True)
        _write_rejects(result.rejects, reject_log)
    except OSError as exc:
        fail(f"cannot write the reject log {reject_log}: {exc.strerror}")
    _print_summary(result, reject_log)

    if result.accepted_rows == 0:
        fail("no valid data under " + str(data_dir) + ": nothing published")
    if strict and result.invalid:
        fail(f"--strict: {result.invalid} invalid input(s), nothing published; see {reject_log}")

    from loader.publish import PublishError, publish
    import redis

    url, client = connect(redis_url, state_dir)
    meta = {
        "loaded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "data_dir": str(data_dir.resolve()),
        "quarters": result.quarters,
        "accepted_rows": result.accepted_rows,
        "rejected_rows": result.rejects.height,
        "selections": result.selections.height,
    }
    try:
        ver = publish(client, _keys(), result, meta)
    except PublishError as exc:
        fail(str(exc))
    except redis.exceptions.OutOfMemoryError:
        fail(f"Redis at {_safe_url(url)} is out of memory (OOM: maxmemory reached): nothing was "
             "published and the previous data keeps serving; raise maxmemory (BANNERS_REDIS_MAXMEMORY for "
             "the embedded one) or free memory, then load again")
    except redis.RedisError as exc:
        reason = str(exc).rsplit(" caused error: ", 1)[-1][:300]  # not the pipeline's whole command
        fail(f"publishing to {_safe_url(url)} failed, the previous data keeps serving: {reason}")
    if not redis_url:
        try:
            client.bgsave()  # the embedded instance keeps what was published across restarts
        except redis.RedisError:
            pass
    click.echo(f"published version {ver}: quarters {', '.join(map(str, result.quarters))}, "
               f"{result.selections.height} banners selected")
    sys.exit(EXIT_REJECTED if result.invalid else EXIT_OK)


def _write_rejects(rejects, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rejects.iter_rows(named=True):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _print_summary(result, reject_log: Path) -> None:
    from loader.pipeline import REASONS

    cols = ["quarter", "kind", "files", "files_rejected", "rows", "accepted", *REASONS]
    rows = [[("-" if v is None else str(v)) for v in r] for r in result.summary.select(cols).iter_rows()]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    click.echo("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        click.echo("  ".join(v.rjust(w) for v, w in zip(r, widths)))
    whole = [f for f in result.files if f.rejected]
    for f in whole:
        click.echo(f"file rejected: {f.rel}: {f.rejected}: {f.detail}")
    n = result.rejects.height
    click.echo(f"{n} rejection(s) logged to {reject_log}" if n else "no rejections")


@main.command()
@click.option("--quarter", type=click.IntRange(1, 4), default=None, help="Only this quarter.")
@click.option("--campaign", type=click.IntRange(min=0), default=None, help="Only this campaign.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, one object per quarter and campaign.")
@_redis_options
def show(quarter, campaign, as_json, redis_url, state_dir):
    """Print the published selections, in selection order.

    \b
    Example:
      banners show --quarter 2 --campaign 7
      banners show --json | jq '.[] | select(.scenario == "top_clicks")'
    """
    from banner_server.catalog import read_selections

    _, client = connect(redis_url, state_dir)
    ver, records = read_selections(client, _keys())
    if ver is None:
        fail("nothing published yet: run `banners load DATA_DIR` first")
    records = [
        r for r in records
        if (quarter is None or r["quarter"] == quarter) and (campaign is None or r["campaign_id"] == campaign)
    ]
    if as_json:
        click.echo(json.dumps(records))
        return
    if not records:
        click.echo("no selection matches")
        return
    for r in records:
        banners = ", ".join(
            f"{b['banner_id']} ({b['source']}: {b['revenue']:g} rev, {b['clicks']} clicks)" for b in r["banners"]
        )
        click.echo(f"Q{r['quarter']} campaign {r['campaign_id']:>4}  {r['scenario']:<20} x={r['x']:<4} {banners}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_redis_options
def status(as_json, redis_url, state_dir):
    """What is loaded: version, time, seed, and every file with its hash and row counts.

    \b
    Example:
      banners status --json
    """
    from banner_server.catalog import read_status

    _, client = connect(redis_url, state_dir)
    info = read_status(client, _keys())
    if as_json:
        click.echo(json.dumps(info))
        return
    if not info["loaded"]:
        click.echo("nothing published yet: run `banners load DATA_DIR` first")
        return
    click.echo(f"version {info['version']}  loaded at {info.get('loaded_at')}  seed {info.get('seed')}")
    click.echo(f"data dir {info.get('data_dir')}  quarters {info.get('quarters')}  "
               f"accepted rows {info.get('accepted_rows')}  rejected rows {info.get('rejected_rows')}")
    for f in info["files"]:
        state = f["file_rejected"] or f"{f['accepted']}/{f['rows']} rows accepted"
        click.echo(f"  {f['sha256'][:12]}  {f['path']:<32} q{f['quarter'] or '-'} {f['kind'] or '-':<12} {state}")


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, metavar="HOST:PORT",
              help="Address to listen on (also unix:/path).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="gunicorn worker processes [default: two per core].")
@click.option("--quarter", type=click.IntRange(1, 4), default=None,
              help="Serve this quarter whatever the time (demos, tests).")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder of image_<id>.png pictures to serve instead of generated SVGs.")
@click.option("--tz", default=None, metavar="ZONE", help="Time zone of the quarter, e.g. Europe/Amsterdam "
              "[default: the system's].")
@click.option("--visitor-ttl", type=click.IntRange(min=1), default=86400, show_default=True,
              help="Seconds a visitor's last banner is remembered in Redis.")
@click.option("--cookie-secure", is_flag=True, help="Mark the visitor cookie Secure (behind HTTPS).")
@click.option("--trusted-proxy", multiple=True, metavar="CIDR",
              help="Believe X-Forwarded-For from this proxy network (repeatable).")
@click.option("--access-log", default=None, metavar="PATH", help="gunicorn access log ('-' for stderr).")
@_redis_options
def serve(bind, workers, quarter, images, tz, visitor_ttl, cookie_secure, trusted_proxy, access_log,
          redis_url, state_dir):
    """Serve banners over HTTP with gunicorn and meinheld workers.

    \b
    GET /campaigns/<id>        one banner of the campaign (HTML, or JSON with
                               Accept: application/json or ?format=json)
    GET /banners/<id>.svg      the banner's picture
    GET /  /healthz  /readyz  /metrics
    \b
    Example:
      banners serve --bind 0.0.0.0:8000 --workers 4 --images ../shared/datachef/images
    """
    import ipaddress
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if tz:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise click.BadParameter(f"unknown time zone {tz!r}", param_hint="--tz") from None
    for net in trusted_proxy:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise click.BadParameter(f"not an address or network: {net!r}", param_hint="--trusted-proxy") from None
    from banner_server.bind import bind_problem
    from banner_server.config import Settings

    try:
        problem = bind_problem(bind)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bind") from None
    if problem:
        fail(f"cannot listen on {bind}: {problem}")
    conf = Path(__file__).resolve().parent / "gunicorn.conf.py"
    if not conf.is_file():
        fail(f"gunicorn.conf.py not found next to cli.py ({conf}); install the project with `make install`")
    env = {
        "BANNERS_BIND": bind,
        "BANNERS_WORKERS": str(workers or ""),
        "BANNERS_QUARTER": str(quarter or ""),
        "BANNERS_TZ": tz or "",
        "BANNERS_IMAGES": str(images.resolve()) if images else "",
        "BANNERS_VISITOR_TTL": str(visitor_ttl),
        "BANNERS_COOKIE_SECURE": "1" if cookie_secure else "",
        "BANNERS_TRUSTED_PROXIES": ",".join(trusted_proxy),
        "BANNERS_METRICS_DIR": str((state_dir / "metrics").resolve()),
        "BANNERS_ACCESS_LOG": access_log or "",
    }
    try:
        Settings.from_env({**os.environ, **env})  # what each worker will read: fail here, not in N workers
    except ValueError as exc:
        fail(f"bad setting: {exc}", EXIT_USAGE)
    url, client = connect(redis_url, state_dir)  # only once everything else is known to be right
    client.close()
    env["BANNERS_REDIS_URL"] = url
    os.environ.update(env)
    click.echo(f"serving on http://{bind} (Redis {_safe_url(url)})", err=True)
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "-c", str(conf)])


@main.group()
def redis():
    """Manage the embedded Redis (only used without --redis-url).

    \b
    Example:
      banners redis start          # prints unix:///.../var/redis.sock
      BANNERS_STATE_DIR=/srv/banners banners redis stop
    """


@redis.command("start")
@click.option("--state-dir", envvar="BANNERS_STATE_DIR", default="var", type=click.Path(file_okay=False, path_type=Path))
def redis_start(state_dir):
    """Start the embedded Redis (or find it running) and print its URL.

    \b
    Example:
      redis-cli -s "$(banners redis start | sed 's|unix://||')" ping
    """
    from banner_server.embedded_redis import EmbeddedRedis, EmbeddedRedisError

    try:
        click.echo(EmbeddedRedis(state_dir).ensure_running())
    except EmbeddedRedisError as exc:
        fail(str(exc))


@redis.command("stop")
@click.option("--state-dir", envvar="BANNERS_STATE_DIR", default="var", type=click.Path(file_okay=False, path_type=Path))
def redis_stop(state_dir):
    """Save and stop the embedded Redis of STATE_DIR (its data stays for the next start).

    \b
    Example:
      banners redis stop           # or: make stop
    """
    from banner_server.embedded_redis import EmbeddedRedis

    stopped = EmbeddedRedis(state_dir).stop()
    click.echo("embedded Redis stopped" if stopped else "embedded Redis was not running")


if __name__ == "__main__":
    main()
