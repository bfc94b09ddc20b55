"""`banners export`: an hour of recorded events written as input files for `banners load`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
import redis

from banner_server import config
from banner_server.clock import system_clock
from banner_server.layout.events import EventStore
from banner_server.text import clean
from banner_server.clients.errors import CLIENT_ERRORS

from .common import connect, fail, keys, plural, redis_options, safe_url, setting_option, warn

# Seconds after an hour's end before `export` takes it for the last hour that is over:
# a host whose clock runs a little behind, or a request in flight at the turn of the
# hour, may still add to it for a moment.
EXPORT_SETTLE = 60


def _clock(tz: str | None):
    """The export's clock (tests replace it): now in the server's time zone."""
    return system_clock(tz)


def invalid_files(hour: str, recorded) -> dict[str, bytes]:
    """The invalid events of an hour (web/quality.py) in the export's layout with a
    `reason` column last, same file names: for audit, never for `banners load`."""
    import polars as pl

    def csv(rows, schema, sort) -> bytes:
        return pl.DataFrame(rows, orient="row", schema=schema).sort(sort).write_csv(line_terminator="\n").encode()

    out: dict[str, bytes] = {}
    quarters = set(recorded.invalid_impressions) | set(recorded.invalid_clicks) | set(recorded.invalid_conversions)
    for q in sorted(quarters):
        imps = [(b, c, r) for c, b, r, n in recorded.invalid_impressions.get(q, ()) for _ in range(n)]
        if imps:
            out[f"{q}/impressions_{hour}.csv"] = csv(
                imps, {"banner_id": pl.Int64, "campaign_id": pl.Int64, "reason": pl.String},
                ["campaign_id", "banner_id", "reason"])
        if recorded.invalid_clicks.get(q):
            out[f"{q}/clicks_{hour}.csv"] = csv(
                recorded.invalid_clicks[q],
                {"click_id": pl.Int64, "banner_id": pl.Int64, "campaign_id": pl.Int64, "reason": pl.String},
                ["click_id"])
        if recorded.invalid_conversions.get(q):
            out[f"{q}/conversions_{hour}.csv"] = csv(
                recorded.invalid_conversions[q],
                {"conversion_id": pl.Int64, "click_id": pl.Int64, "revenue": pl.String, "reason": pl.String},
                ["conversion_id"])
    return out


def _parse_hour(text: str) -> dt.datetime:
    try:
        if len(text) != 13:
            raise ValueError
        return dt.datetime.strptime(text, "%Y-%m-%dT%H")
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an hour like 2026-11-28T23 (local date and hour)") from None


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--hour", metavar="YYYY-MM-DDTHH", default=None,
              help="The local hour to export, as the servers recorded it [default: the last one that is over].")
@click.option("--running-hour-partial", "running", is_flag=True,
              help="Allow --hour to name the hour still being recorded: its files hold only what was "
                   "recorded so far (export it again once it is over).")
@click.option("--invalid", "invalid_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write the hour's invalid traffic (bots, prefetch, HEAD, replays...) here, same file "
                   "names with a `reason` column, for audit (never load it).")
@setting_option("--tz", config.TZ, metavar="ZONE",
                help="Only for messages: the hours are the servers' own, whatever this zone.")
@redis_options
def export(out_dir, hour, running, invalid_dir, tz, redis_url, state_dir):
    """Write an hour of recorded events as input files: OUT_DIR/{1,2,3,4}/.

    Valid events only: invalid traffic (README: Traffic quality) never reaches the
    next selection; --invalid DIR writes it apart, each row with its reason.

    For each quarter of the hour, impressions_<hour>.csv (one row per impression),
    clicks_<hour>.csv and conversions_<hour>.csv, in the layout `banners load`
    reads, so `banners load OUT_DIR` selects from what the service recorded.  A
    conversion goes in its click's quarter folder (the loader wants its click in
    the same quarter), in the file of the hour it was recorded.  Rows are sorted:
    the same hour exported twice gives the same bytes.  Files are written whole
    (temporary file, renamed); a kind with no event in a quarter gets no file.

    Export is a read: nothing is removed from Redis (recorded events are dropped by
    retention after --keep-events, clicks and conversions after 30 days).  Which
    hours are over is decided by the end each hour was recorded with by the servers,
    not by this command's --tz; the default is the last hour that ended at least a
    minute ago.  An hour with nothing in Redis writes nothing and leaves any earlier
    files as they are.

    \b
    Exit status: 0 written (or nothing to write); 1 Redis unreachable or a file
                 could not be written; 2 usage (a malformed hour, or the running
                 hour without --running-hour-partial).
    \b
    Example:
      banners export exports/                       # the last hour that is over
      banners export exports/ --hour 2026-11-28T23
      banners load exports/
    """
    from loader.export import hour_files, write_files  # polars: only for the commands using it

    now = _clock(tz)()
    if hour is not None:
        _parse_hour(hour)
    url, client = connect(redis_url, state_dir, start=False)
    events = EventStore(client, keys())
    try:
        if hour is None:
            # The servers' own hours: the last one whose recorded end is a minute past.
            settled = now - dt.timedelta(seconds=EXPORT_SETTLE)
            closed = events.closed_hours(settled)
            if not closed:
                click.echo(f"nothing recorded in an hour that is over (the last one ended at least "
                           f"{EXPORT_SETTLE} s before {now:%Y-%m-%d %H:%M %Z}): no file written")
                return
            hour = closed[-1]
        else:
            end = events.hour_end(hour)
            if end is not None and end > now.timestamp() and not running:
                raise click.BadParameter(
                    f"hour {hour} is still being recorded (it ends at "
                    f"{dt.datetime.fromtimestamp(end, now.tzinfo):%Y-%m-%d %H:%M %Z}); only an hour that is over "
                    "can be exported, or give --running-hour-partial for what is recorded so far",
                    param_hint="--hour")
        recorded = events.read_hour(hour)
        kept = events.keep_events
    except (*CLIENT_ERRORS, redis.RedisError) as exc:
        fail(f"cannot read hour {hour} from Redis at {safe_url(url)}: {exc}")
    if recorded.empty:
        future = _parse_hour(hour) > now.replace(tzinfo=None)
        click.echo(f"nothing recorded in hour {hour}: " + ("it has not started yet" if future else
                   "no events in Redis (none happened, or they are older than --keep-events)")
                   + "; no file written")
        return
    try:
        written = write_files(out_dir, hour_files(hour, recorded.impressions, recorded.clicks, recorded.conversions))
        audit = write_files(invalid_dir, invalid_files(hour, recorded)) if invalid_dir is not None else []
    except OSError as exc:
        fail(f"cannot write the files under {clean(out_dir)}: {exc.strerror or exc}")
    for q, (imps, clicks, convs) in recorded.counts().items():
        click.echo(f"quarter {q}: {plural(imps, 'impression')}, {plural(clicks, 'click')}, "
                   f"{plural(convs, 'conversion')}")
    if recorded.unreadable:
        warn(f"{recorded.unreadable} recorded event(s) could not be read and were left out")
    end = events.hour_end(hour)
    if end is not None and end > now.timestamp():
        warn(f"hour {hour} is still being recorded: these files hold what was recorded so far "
             "(--running-hour-partial); export it again once it is over")
    elif end is not None and end + kept < now.timestamp():
        warn(f"hour {hour} ended more than --keep-events ago: its impressions may be pruned already")
    invalid = (sum(n for rows in recorded.invalid_impressions.values() for *_, n in rows),
               sum(map(len, recorded.invalid_clicks.values())))
    if any(invalid):
        click.echo(f"left out as invalid traffic: {plural(invalid[0], 'impression')}, {plural(invalid[1], 'click')}"
                   + (f" (written under {clean(invalid_dir)})" if invalid_dir is not None else " (--invalid DIR "
                      "writes them)"))
    click.echo(f"wrote {plural(len(written), 'file')} for hour {hour} under {clean(out_dir)}")
    if invalid_dir is not None:
        click.echo(f"wrote {plural(len(audit), 'file')} of invalid traffic under {clean(invalid_dir)}")
