"""`banners redis start|stop`: the embedded Redis of the state folder.

(The module and the group are not named `redis`, so that redis-py keeps its name.)
"""

from __future__ import annotations

import click

from banner_server import config
from banner_server.clients.embedded import EmbeddedRedis, EmbeddedRedisError

from .common import EXIT_USAGE, fail, state_dir_option


@click.group("redis")
def redis_group():
    """Manage the embedded Redis (only used without --redis-url).

    \b
    Example:
      banners redis start          # prints unix:///.../var/redis.sock
      BANNERS_STATE_DIR=/srv/banners banners redis stop
    """


@redis_group.command("start")
@state_dir_option
def redis_start(state_dir):
    """Start the embedded Redis (or find it running) and print its URL.

    \b
    Example:
      redis-cli -s "$(banners redis start | sed 's|unix://||')" ping
    """
    try:
        click.echo(EmbeddedRedis(state_dir, config.REDIS_MAXMEMORY.get).ensure_running())
    except config.SettingError as exc:
        fail(str(exc), EXIT_USAGE)
    except EmbeddedRedisError as exc:
        fail(str(exc))


@redis_group.command("stop")
@state_dir_option
def redis_stop(state_dir):
    """Save and stop the embedded Redis of STATE_DIR (its data stays for the next start).

    \b
    Example:
      banners redis stop           # or: make stop
    """
    stopped = EmbeddedRedis(state_dir).stop()
    click.echo("embedded Redis stopped" if stopped else "embedded Redis was not running")
