"""`banners sample-data`, `show` and `status`: example input, and what is published."""

from __future__ import annotations

import json
from pathlib import Path

import click

from banner_server.layout.catalog import read_selections, read_status
from banner_server.text import clean

from .common import NOTHING_PUBLISHED, connect, fail, keys, plural, print_table, redis_options, warn

# The generator holds a whole quarter in memory: x100 is 80 M rows, 660 MB of CSV and
# a 1.2 GB peak; far beyond that a laptop runs out of memory, not of patience.
MAX_SAMPLE_SCALE = 100.0


@click.command("sample-data")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=1, show_default=True,
              help="Seed of the generator.")
@click.option("--scale", type=click.FloatRange(min=0.0001, max=MAX_SAMPLE_SCALE), default=1.0, show_default=True,
              help="Multiplies the row counts (1.0: like the real set, ~800k rows).  Every planned "
                   "banner keeps one impression, so every scenario appears: below ~0.08 the set "
                   "stays at its floor of about 64,000 rows.")
def sample_data(out_dir: Path, seed: int, scale: float):
    """Write a realistic data set into OUT_DIR/{1,2,3,4}/.

    Campaigns 1-50, banners 100-500, the real set's row counts times --scale (never
    below one impression per planned banner, about 64,000 rows), with campaigns in
    every scenario, ties and a few duplicate rows.  It does not use
    Redis.

    \b
    Example:
      banners sample-data data/ --seed 3 --scale 0.1
    """
    from loader.sample_data import write_sample  # polars: loaded by the commands that need it

    try:
        paths = write_sample(out_dir, seed=seed, scale=scale)
    except OSError as exc:
        fail(f"cannot write the sample data under {clean(out_dir)}: {exc.strerror or exc}")
    click.echo(f"wrote {plural(len(paths), 'file')} under {clean(out_dir)} (seed {seed}, scale {scale})")


@click.command()
@click.option("--quarter", type=click.IntRange(1, 4), default=None, help="Only this quarter.")
@click.option("--campaign", type=click.IntRange(min=0), default=None, help="Only this campaign.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, one object per quarter and campaign.")
@redis_options
def show(quarter, campaign, as_json, redis_url, state_dir):
    """Print the published selections, one banner per line in selection order.

    With nothing published yet it says so and exits 0 (`[]` with --json), as
    `status` and `versions` do; it exits 1 when --quarter/--campaign match
    nothing that is published.  Never starts the embedded Redis.

    \b
    Example:
      banners show --quarter 2 --campaign 7
      banners show --json | jq '.[] | select(.scenario == "top_clicks")'
    """
    _, client = connect(redis_url, state_dir, start=False)
    ver, records = read_selections(client, keys())
    if ver is None:
        click.echo("[]" if as_json else NOTHING_PUBLISHED)
        return
    records = [
        r for r in records
        if (quarter is None or r["quarter"] == quarter) and (campaign is None or r["campaign_id"] == campaign)
    ]
    if as_json:
        click.echo(json.dumps(records))
    if not records:
        asked = " and ".join(
            f"{name} {value}" for name, value in (("quarter", quarter), ("campaign", campaign)) if value is not None
        )
        fail(f"no selection for {asked} in version {ver}")
    if as_json:
        return
    cols = ["quarter", "campaign", "scenario", "x", "rank", "banner", "source", "revenue", "clicks"]
    rows = [
        [str(r["quarter"]), str(r["campaign_id"]), r["scenario"], str(r["x"]), str(rank), str(b["banner_id"]),
         b["source"], money(b["revenue"]), str(b["clicks"])]
        for r in records
        for rank, b in enumerate(r["banners"], 1)
    ]
    print_table(cols, rows, left=("scenario", "source"))


def money(value: float) -> str:
    """Cents as cents; a revenue with finer parts keeps them (the ranking sees them)."""
    return f"{value:.2f}" if round(value, 2) == value else f"{value:.10g}"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@redis_options
def status(as_json, redis_url, state_dir):
    """What is loaded: version, time, seed, and every file with its hash and row counts.

    With nothing published yet it says so and exits 0.  Never starts the embedded
    Redis: with none running it says where it looked, exit 1.

    \b
    Example:
      banners status --json
    """
    _, client = connect(redis_url, state_dir, start=False)
    info = read_status(client, keys())
    if as_json:
        click.echo(json.dumps(info))
        return
    if not info["loaded"]:
        click.echo(NOTHING_PUBLISHED)
        return
    click.echo(f"version {info['version']}  loaded at {info.get('loaded_at')}  seed {info.get('seed')}")
    click.echo(f"data dir {clean(info.get('data_dir'))}  quarters {info.get('quarters')}  "
               f"accepted rows {info.get('accepted_rows')}  rejected rows {info.get('rejected_rows')}")
    groups = info["groups"]
    serving = groups["serving"]
    if list(serving) == [info["version"]]:
        click.echo(f"{groups['count']} visitor group(s), all serving version {info['version']}")
    else:
        warn(f"{groups['count']} visitor groups do not agree (a publish failed half-way; load again): "
             + "; ".join(f"{len(g)} serve {v} (groups {', '.join(map(str, g[:8]))}{'...' if len(g) > 8 else ''})"
                         for v, g in serving.items()))
    for f in info["files"]:
        state = f["file_rejected"] or f"{f['accepted']}/{f['rows']} rows accepted"
        click.echo(f"  {f['sha256'][:12]}  {clean(f['path']):<32} q{f['quarter'] or '-'} {f['kind'] or '-':<12} "
                   f"{state}")
