"""`banners load`: the command line of loader/run.py, which does the load and returns
its outcome; here it is printed and turned into the exit status."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click

from banner_server.text import clean

from .common import (EXIT_OK, EXIT_REJECTED, connect, fail, keys, persistence_problem, plural, print_table,
                     redis_options, save_embedded, warn)

# A dry run against a different data set changed ~200 lines: the first ones show what
# kind of change it is, the count says how big; the final line has the totals.
MAX_CHANGE_LINES = 20


@click.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=None,
              help="Seed of the random fill; default: a new one, printed and stored (with --dry-run: the "
              "current version's, so only the data's changes show).")
@click.option("--reject-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where rejected rows go, one JSON line each; its folder must exist "
              "[default: STATE_DIR/rejected.jsonl; with --dry-run STATE_DIR/rejected.dry-run.jsonl].")
@click.option("--strict", is_flag=True, help="Publish nothing if any input is invalid.")
@click.option("--dry-run", is_flag=True, help="Do everything but publish: print what would change against "
              "the current version. Takes no lock; leaves the serving version's reject log alone.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings, errors and the final line.")
@redis_options
def load(data_dir: Path, seed, reject_log, strict, dry_run, quiet, redis_url, state_dir):
    """Validate every *.csv under DATA_DIR, compute the selections, publish them.

    Quarter of a file: its nearest parent folder named 1-4, else a _1.._4 suffix.
    Kind: its header.  Duplicate files and rows, conflicts, orphan conversions and
    malformed rows are rejected into the reject log; the folder as a whole replaces
    what was published before, atomically.  Redis is checked and the load lock
    taken before any file is read; one load runs at a time.  The reject log is
    replaced only when the load publishes; the rejections of a load that publishes
    nothing go to NAME.failed.jsonl beside it.  The current version and the 3
    loaded before it are kept (`banners versions`, `banners rollback`).

    With --dry-run, everything but the publishing: it prints the summary, then,
    per quarter, the campaigns that would be added (+) or removed (-) and the
    banners that would change in a campaign (~), against the current version (the
    first 20 lines, and how many more).  It takes no lock (a load may run
    meanwhile), needs Redis all the same, and writes its rejections only to its
    own log.

    \b
    Exit status: 0 published; 3 published, but some input was invalid or a
                 quarter has no data; 1 nothing published (Redis unreachable,
                 no valid data, --strict and invalid input, another load
                 running); 2 usage.  A dry run exits as the load would.
    \b
    Example:
      banners load ../shared/datachef/csv --seed 42 --reject-log rejects.jsonl
      banners load data/ --dry-run
    """
    from loader.run import LoadOptions, NothingPublished, Published, run  # polars: only for the commands using it

    if reject_log is None:
        reject_log = state_dir / ("rejected.dry-run.jsonl" if dry_run else "rejected.jsonl")
        reject_log_folder = state_dir  # ours to create, like the embedded Redis does
    elif not reject_log.parent.is_dir():
        raise click.BadParameter(f"{clean(reject_log)}: folder {clean(reject_log.parent)} does not exist",
                                 param_hint="--reject-log")
    else:
        reject_log_folder = None
    url, client = connect(redis_url, state_dir)  # before reading any file (SPEC §6)
    outcome = run(LoadOptions(data_dir, client, keys(), url, reject_log, reject_log_folder, seed=seed, strict=strict,
                              dry_run=dry_run, report=_Printer(quiet)))
    for line in outcome.warnings:
        warn(line)
    if isinstance(outcome, NothingPublished):
        fail(outcome.message)
    if isinstance(outcome, Published):
        unsaved = save_embedded(client) if not redis_url else persistence_problem(client.info("persistence"))
        if unsaved:
            # It serves, but a Redis restart would lose it: the operator must know (exit 3).
            warn(f"published version {outcome.version}, but it is not safe on disk: {unsaved}; "
                 "free the disk and load again (or `banners redis stop` saves once it can)")
        _finish(outcome, f"published version {outcome.version} (seed {outcome.seed})", unsaved=bool(unsaved))
    if not quiet:
        _print_changes(outcome.changes)
    _finish(outcome, f"dry run, nothing published (seed {outcome.seed})", outcome.changes.total)


class _Printer:
    """What the load says while it runs: its seed, a progress bar, the summary."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def seed(self, seed: int, whose: str) -> None:
        if not self.quiet:
            click.echo(f"seed: {seed}{whose}")

    @contextmanager
    def reading(self, total_bytes: int):
        if self.quiet or not sys.stderr.isatty():
            yield None
            return
        with click.progressbar(length=total_bytes, label="reading", file=sys.stderr) as bar:
            yield bar.update

    def computed(self, result) -> None:
        if not self.quiet:
            _print_summary(result)


def _print_summary(result) -> None:
    from loader.pipeline import REASONS

    cols = ["quarter", "kind", "files", "files_rejected", "rows", "accepted", *REASONS]
    rows = [[("-" if v is None else str(v)) for v in r] for r in result.summary.select(cols).iter_rows()]
    print_table(cols, rows)
    for f in result.files:
        if f.rejected:
            click.echo(f"file rejected: {clean(f.rel)}: {f.rejected}: {clean(f.detail)}")
    # Counted by the pipeline on the loader's side (campaigns.csv rows naming a
    # campaign that has no impression or click); absent from an older LoadResult.
    without = getattr(result, "campaigns_without_data", None)
    if without:
        click.echo(f"campaigns.csv: {without} campaign(s) without data (no impression or click), not served")


def _print_changes(changes) -> None:
    click.echo(changes.header)
    lines = changes.lines
    for line in lines[:MAX_CHANGE_LINES]:
        click.echo(line)
    if len(lines) > MAX_CHANGE_LINES:
        click.echo(f"... and {len(lines) - MAX_CHANGE_LINES} more line(s)")


def _finish(outcome, head: str, tail: str | None = None, unsaved: bool = False):
    """The end of a load or a dry run: its warnings, one final line, its exit status."""
    result = outcome.result
    for line in outcome.missing:
        warn(line)
    if result.invalid:
        warn(f"{result.invalid} invalid input(s) rejected, see {clean(outcome.reject_log)}")
    n = result.rejected  # every rejection counted; the log holds the first ones of each kind
    click.echo(f"{head}: {plural(result.selections.height, 'banner')} selected in "
               f"quarter(s) {', '.join(map(str, result.quarters))}; "
               + (f"{n} rejection(s) logged to {clean(outcome.reject_log)}" if n else "no rejections")
               + (f"; {tail}" if tail else ""))
    sys.exit(EXIT_REJECTED if outcome.incomplete or unsaved else EXIT_OK)
