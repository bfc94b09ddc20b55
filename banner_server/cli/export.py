"""`banners export`: an hour of recorded events written as input files for `banners load`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
import redis

from banner_server import config
from banner_server.clock import hour_of, system_clock
from banner_server.layout.events import EventStore
from banner_server.text import clean
from banner_server.clients.errors import CLIENT_ERRORS

from .common import connect, fail, keys, plural, redis_options, safe_url, setting_option, warn

# Seconds after an hour's end before `export` removes its events: a host whose clock
# runs a little behind, or a request in flight at the turn of the hour, may still add
# to it for a moment, and what lands after the export read it would be lost.
EXPORT_SETTLE = 60


def _clock(tz: str | None):
    """The export's clock (tests replace it): now in the server's time zone."""
    return system_clock(tz)


def _parse_hour(text: str) -> dt.datetime:
    try:
        if len(text) != 13:
            raise ValueError
        return dt.datetime.strptime(text, "%Y-%m-%dT%H")
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an hour like 2026-11-28T23 (local date and hour)") from None


def _last_closed_hour(now: dt.datetime) -> str:
    """The hour before the current one, in wall-clock terms: stepping back in UTC, so a
    daylight-saving change (an hour repeated or skipped) is counted right."""
    current = hour_of(now)
    moment = now.replace(minute=0, second=0, microsecond=0).astimezone(dt.timezone.utc)
    while hour_of(moment.astimezone(now.tzinfo)) >= current:
        moment -= dt.timedelta(hours=1)
    return hour_of(moment.astimezone(now.tzinfo))


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--hour", metavar="YYYY-MM-DDTHH", default=None,
              help="The local hour to export [default: the last one that is over].")
@click.option("--keep", is_flag=True, help="Leave the hour's events in Redis (default: removed once written).")
@setting_option("--tz", config.TZ, metavar="ZONE",
                 help="The server's time zone, in which hours are counted [default: the system's].")
@redis_options
def export(out_dir, hour, keep, tz, redis_url, state_dir):
    """Write an hour of recorded events as input files: OUT_DIR/{1,2,3,4}/.

    For each quarter of the hour, impressions_<hour>.csv (one row per impression),
    clicks_<hour>.csv and conversions_<hour>.csv, in the layout `banners load`
    reads, so `banners load OUT_DIR` selects from what the service recorded.  A
    conversion goes in its click's quarter folder (the loader wants its click in
    the same quarter), in the file of the hour it was recorded.  Rows are sorted:
    the same hour exported twice gives the same bytes.  Files are written whole
    (temporary file, renamed); a kind with no event in a quarter gets no file.

    Once every file is written, the hour's events are removed from Redis (the click
    and conversion records that postbacks need stay), unless --keep; an hour that
    ended less than a minute ago keeps them (a late request may still count).  An
    hour with nothing in Redis (none recorded, already removed, or older than
    --keep-events) writes nothing and leaves any earlier files as they are.

    \b
    Exit status: 0 written (or nothing to write); 1 Redis unreachable or a file
                 could not be written (nothing removed); 2 usage (a malformed
                 hour, or one that is not over yet).
    \b
    Example:
      banners export exports/                       # the last hour, then remove it
      banners export exports/ --hour 2026-11-28T23 --keep
      banners load exports/
    """
    from loader.export import hour_files, write_files  # polars: only for the commands using it

    now = _clock(tz)()
    current = hour_of(now)
    if hour is None:
        hour = _last_closed_hour(now)
    else:
        _parse_hour(hour)
        if hour >= current:
            raise click.BadParameter(f"hour {hour} is not over yet (it is {now:%Y-%m-%d %H:%M} {now:%Z} now); "
                                     "only an hour that is over can be exported", param_hint="--hour")
    url, client = connect(redis_url, state_dir, start=False)
    events = EventStore(client, keys())
    try:
        recorded = events.read_hour(hour)
    except (*CLIENT_ERRORS, redis.RedisError) as exc:
        fail(f"cannot read hour {hour} from Redis at {safe_url(url)}: {exc}")
    if recorded.empty:
        click.echo(f"nothing recorded in hour {hour} ({now:%Z}): no events in Redis (none happened, an earlier "
                   "export removed them, or they are older than --keep-events); no file written")
        return
    try:
        written = write_files(out_dir, hour_files(hour, recorded.impressions, recorded.clicks, recorded.conversions))
    except OSError as exc:
        fail(f"cannot write the files under {clean(out_dir)}: {exc.strerror or exc}; nothing removed from Redis")
    for q, (imps, clicks, convs) in recorded.counts().items():
        click.echo(f"quarter {q}: {plural(imps, 'impression')}, {plural(clicks, 'click')}, "
                   f"{plural(convs, 'conversion')}")
    if recorded.unreadable:
        warn(f"{recorded.unreadable} recorded event(s) could not be read and were left out")
    click.echo(f"wrote {plural(len(written), 'file')} for hour {hour} under {clean(out_dir)}")
    if keep:
        click.echo("events kept in Redis (--keep)")
        return
    end = (_parse_hour(hour) + dt.timedelta(hours=1)).replace(tzinfo=now.tzinfo)
    if now.timestamp() - end.timestamp() < EXPORT_SETTLE:
        warn(f"hour {hour} ended less than {EXPORT_SETTLE} s ago: its events are kept in Redis (a late request may "
             "still count); export it again later to remove them")
        return
    try:
        events.delete_hour(hour)
    except (*CLIENT_ERRORS, redis.RedisError) as exc:
        fail(f"the files are written, but removing hour {hour}'s events from Redis failed ({exc}); they expire "
             "after --keep-events, or export the hour again")
    click.echo(f"removed hour {hour}'s events from Redis (--keep keeps them)")
