"""`banners versions` and `banners rollback`: the versions kept, and going back to one."""

from __future__ import annotations

import json

import click
import redis

from banner_server.layout.catalog import list_versions
from banner_server.text import clean

from .common import NOTHING_PUBLISHED, connect, fail, keys, print_table, redis_options, safe_url, save_embedded


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON array, newest first.")
@redis_options
def versions(as_json, redis_url, state_dir):
    """The versions kept for a rollback, newest load first; * marks the current one.

    A load keeps the current version and the 3 loaded before it (in load order) and
    deletes older ones.  Each: id, time loaded (UTC), seed, quarters, banners
    selected and data folder.  Never starts the embedded Redis: with none running it
    says where it looked, exit 1.

    \b
    Example:
      banners versions
      banners versions --json | jq -r '.[] | select(.current) | .version'
    """
    url, client = connect(redis_url, state_dir, start=False)
    try:
        kept = list_versions(client, keys())
    except redis.RedisError as exc:
        fail(f"cannot read the versions from Redis at {safe_url(url)}: {exc}")
    if as_json:
        click.echo(json.dumps(kept))
        return
    if not kept:
        click.echo(NOTHING_PUBLISHED)
        return

    def cell(value) -> str:
        if isinstance(value, list):
            return ",".join(map(str, value)) or "-"
        return "-" if value is None else str(value)

    cols = ["", "version", "loaded_at", "seed", "quarters", "banners", "data_dir"]
    rows = [["*" if v["current"] else "", *(clean(cell(v[c])) for c in cols[1:])] for v in kept]  # data_dir: a name
    print_table(cols, rows, left=("", "version", "loaded_at", "quarters", "data_dir"))


@click.command()
@click.argument("version", required=False)
@redis_options
def rollback(version, redis_url, state_dir):
    """Make a kept version current again, in one atomic switch; workers follow at once.

    VERSION is an id from `banners versions` (its number alone will do); default:
    the version loaded just before the current one.  So a second rollback goes one
    more load back, until the oldest kept; name a newer kept version to go forward
    again.  A rollback takes the load lock: it never runs during a load.  Naming
    the current version changes nothing and says so.  Never starts the embedded Redis.

    \b
    Exit status: 0 switched (or already current); 1 nothing switched (no such
                 kept version, none before the current one, a load running,
                 Redis unreachable); 2 usage.
    \b
    Example:
      banners rollback            # back to the version loaded before
      banners rollback 12-9f3a1c  # or: banners rollback 12
    """
    # polars (loader): imported by the commands that use it, not by `banners --help`
    from loader.publish import LoadLock, LoadRunning, RollbackError, rollback as switch_back

    url, client = connect(redis_url, state_dir, start=False)
    lock = LoadLock(client, keys())
    try:
        lock.acquire()
    except LoadRunning:
        fail("a load or another rollback is running: nothing switched; try again when it ends")
    except redis.RedisError as exc:
        fail(f"cannot take the load lock in Redis at {safe_url(url)}: {exc}")
    try:
        before, now = switch_back(client, keys(), version, lock)
    except RollbackError as exc:
        kept = ", ".join(f"{v} (current)" if v == exc.current else v for v in reversed(exc.kept))
        fail(f"{exc}; kept versions, newest first: {kept or 'none'}")
    except redis.RedisError as exc:
        fail(f"rolling back in Redis at {safe_url(url)} failed ({exc}); `banners versions` says which version "
             "is current")
    finally:
        lock.release()
    if before == now:
        click.echo(f"version {now} is already current: nothing changed")
        return
    if not redis_url:
        save_embedded(client)
    click.echo(f"version {now} is current again (was {before}); workers serve it from their next request")
