"""What every command shares: exit statuses, how errors and warnings are said, the
options that are BANNERS_* variables, the connection step, and aligned tables."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import redis

from banner_server import checks, config
from banner_server.clients import urls
from banner_server.clients.detect import connect_client
from banner_server.clients.errors import CLIENT_ERRORS
from banner_server.clients.embedded import EmbeddedRedis, EmbeddedRedisError, resolve_redis_url
from banner_server.layout.keys import Keys
from banner_server.text import clean

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
NOTHING_PUBLISHED = "nothing published yet: run `banners load DATA_DIR` first"  # show, status, versions: exit 0


class _Setting(click.ParamType):
    """An option that is a BANNERS_* variable, checked by config.py.  (click's error
    names the variable along with the option.)"""

    def __init__(self, var, parse=None):
        self.var = var
        self.parse = parse or var.parse
        self.name = var.name

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value  # a default, or a flag, already converted
        try:
            return self.parse(value)
        except ValueError as exc:
            self.fail(f"{urls.mask_password(value)!r} {exc}", param, ctx)

    def split_envvar_value(self, rv):
        return checks.split_networks(rv)  # the one list variable: networks, by commas or spaces


class _BoolSetting(_Setting, click.types.BoolParamType):
    """The same for a flag (click wants a BoolParamType there)."""


def setting_option(decl: str, var, *, parse=None, **kw):
    """`decl` as an option that is the variable `var`: same name, default and check."""
    kw.setdefault("show_default", var.default is not None)
    return click.option(decl, envvar=var.name, show_envvar=True, type=_Setting(var, parse), default=var.default, **kw)


def flag_setting_option(decl: str, var, **kw):
    """A yes/no variable as a flag."""
    return click.option(decl, is_flag=True, envvar=var.name, show_envvar=True, type=_BoolSetting(var), **kw)


def state_dir_option(fn):
    return click.option(
        "--state-dir", envvar=config.STATE_DIR.name, show_envvar=True, default=config.STATE_DIR.default,
        show_default=True, type=click.Path(file_okay=False, path_type=Path),
        help="Folder of the embedded Redis, its data and the reject log.",
    )(fn)


def redis_options(fn):
    fn = state_dir_option(fn)
    # Checked with the parser both Redis clients use, when the command line is read:
    # a URL they cannot use is a usage error before anything starts.
    fn = setting_option(
        "--redis-url", config.REDIS_URL, metavar="URL",
        help="redis://, rediss:// or unix:// URL, any node of a Redis Cluster, or "
             "redis+sentinel://host:port/MASTER. Default: the embedded Redis of the state folder (load, "
             "serve and `redis start` start it; the other commands only look for it).",
    )(fn)
    return fn


def fail(message: str, code: int = EXIT_FAILED):
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 file`, `2 files`."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def connect(redis_url: str | None, state_dir: Path, start: bool = True):
    """A client for --redis-url or the embedded instance; exits 1 with a message on failure.

    start=False (read-only commands): the embedded Redis is looked for, never started,
    so a mistyped --state-dir or a `make stop` is said, not papered over with a new
    empty Redis (SPEC §6).
    """
    # A malformed --redis-url never gets here: the option's type refuses it (exit 2).
    if not redis_url and not start:
        emb = EmbeddedRedis(state_dir)
        redis_url = emb.running_url()
        if redis_url is None:
            looked = ("the folder does not exist" if not emb.state_dir.is_dir()
                      else f"nothing answers at {safe_url(emb.url())}" if emb.url() else f"it has no {emb.urlfile.name}")
            fail(f"no embedded Redis is running in the state folder {clean(emb.state_dir)} ({looked}); start it with "
                 "`banners redis start` (a load starts it too), or give --redis-url (env BANNERS_REDIS_URL)")
    try:
        url = resolve_redis_url(redis_url, state_dir, config.REDIS_MAXMEMORY.get)
        client = connect_client(url, 30, 5)  # one Redis, a cluster (detected) or Sentinel
        try:
            client.ping()
        except redis.ResponseError as exc:
            # A Redis that cannot write its file (a full disk) refuses PING with the
            # writes (MISCONF): it answers, and what it holds must still be shown.
            if not str(exc).startswith("MISCONF"):
                raise
    except config.SettingError as exc:
        fail(str(exc), EXIT_USAGE)
    except (EmbeddedRedisError, OSError, ValueError) as exc:
        fail(f"cannot start the embedded Redis: {exc}")
    except CLIENT_ERRORS as exc:
        fail(f"cannot reach Redis at {safe_url(url)}: {exc}")
    return url, client


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    return urls.mask_password(url)


def keys() -> Keys:
    return Keys(config.KEY_PREFIX.get())


def save_embedded(client, wait: float = 10.0, sleep=time.sleep) -> str | None:
    """Saves what was published (or switched to) on the embedded instance, and checks
    that Redis could write it to disk: None when it could, else what failed (a full
    disk: the version serves, but a restart would lose it).  Its own Redis is the
    operator's to save; its last save and append-only file are checked all the same."""
    try:
        client.bgsave()
    except redis.RedisError:
        pass  # one already running (a rollback right after a load): wait for it below
    try:
        deadline = time.monotonic() + wait
        while True:
            info = client.info("persistence")
            if not info.get("rdb_bgsave_in_progress") or time.monotonic() > deadline:
                break
            sleep(0.05)
    except CLIENT_ERRORS as exc:
        return f"cannot tell whether Redis saved it ({exc})"
    return persistence_problem(info)


def persistence_problem(info: dict) -> str | None:
    """What INFO persistence says failed, or None: the last snapshot, or the append-only file."""
    if info.get("rdb_last_bgsave_status", "ok") != "ok":
        return "Redis could not write its snapshot to disk (rdb_last_bgsave_status: err; a full disk?)"
    if info.get("aof_enabled") and info.get("aof_last_write_status", "ok") != "ok":
        return "Redis could not write its append-only file (aof_last_write_status: err; a full disk?)"
    return None


def print_table(cols: list[str], rows: list[list[str]], left: tuple[str, ...] = ("kind",)) -> None:
    """Aligned columns under a header row: text columns to the left, numbers to the right."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]

    def line(values):
        return "  ".join(v.ljust(w) if c in left else v.rjust(w) for c, v, w in zip(cols, values, widths)).rstrip()

    click.echo(line(cols))
    for r in rows:
        click.echo(line(r))
