"""`banners`: the command line of the banner server (sample-data, load, versions, rollback,
show, status, serve, export).

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

from banner_server import config

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
# The generator holds a whole quarter in memory: x100 is 80 M rows, 660 MB of CSV and
# a 1.2 GB peak; far beyond that a laptop runs out of memory, not of patience.
MAX_SAMPLE_SCALE = 100.0


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
            self.fail(f"{config.mask_password(value)!r} {exc}", param, ctx)

    def split_envvar_value(self, rv):
        return config.split_networks(rv)  # the one list variable: networks, by commas or spaces


class _BoolSetting(_Setting, click.types.BoolParamType):
    """The same for a flag (click wants a BoolParamType there)."""


def _setting_option(decl: str, var, *, parse=None, **kw):
    """`decl` as an option that is the variable `var`: same name, default and check."""
    kw.setdefault("show_default", var.default is not None)
    return click.option(decl, envvar=var.name, show_envvar=True, type=_Setting(var, parse), default=var.default, **kw)


def _state_dir_option(fn):
    return click.option(
        "--state-dir", envvar=config.STATE_DIR.name, show_envvar=True, default=config.STATE_DIR.default,
        show_default=True, type=click.Path(file_okay=False, path_type=Path),
        help="Folder of the embedded Redis, its data and the reject log.",
    )(fn)


def _redis_options(fn):
    fn = _state_dir_option(fn)
    # Checked with the parser both Redis clients use, when the command line is read:
    # a URL they cannot use is a usage error before anything starts.
    fn = _setting_option(
        "--redis-url", config.REDIS_URL, metavar="URL",
        help="redis://, rediss:// or unix:// URL, any node of a Redis Cluster, or "
             "redis+sentinel://host:port/MASTER. Default: the embedded Redis of the state folder (load, "
             "serve and `redis start` start it; the other commands only look for it).",
    )(fn)
    return fn


def fail(message: str, code: int = EXIT_FAILED):
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def connect(redis_url: str | None, state_dir: Path, start: bool = True):
    """A client for --redis-url or the embedded instance; exits 1 with a message on failure.

    start=False (read-only commands): the embedded Redis is looked for, never started,
    so a mistyped --state-dir or a `make stop` is said, not papered over with a new
    empty Redis (SPEC §6).
    """
    import redis
    from redis.exceptions import RedisClusterException

    from banner_server.embedded_redis import EmbeddedRedis, EmbeddedRedisError, resolve_redis_url
    from banner_server.topology import connect_client

    # A malformed --redis-url never gets here: the option's type refuses it (exit 2).
    if not redis_url and not start:
        emb = EmbeddedRedis(state_dir)
        redis_url = emb.running_url()
        if redis_url is None:
            looked = ("the folder does not exist" if not emb.state_dir.is_dir()
                      else f"nothing answers at {emb.url()}" if emb.url() else f"it has no {emb.urlfile.name}")
            fail(f"no embedded Redis is running in the state folder {emb.state_dir} ({looked}); start it with "
                 "`banners redis start` (a load starts it too), or give --redis-url (env BANNERS_REDIS_URL)")
    try:
        url = resolve_redis_url(redis_url, state_dir)
        client = connect_client(url, 30, 5)  # one Redis, a cluster (detected) or Sentinel
        client.ping()
    except config.SettingError as exc:
        fail(str(exc), EXIT_USAGE)
    except (EmbeddedRedisError, OSError, ValueError) as exc:
        fail(f"cannot start the embedded Redis: {exc}")
    except (redis.RedisError, RedisClusterException) as exc:
        fail(f"cannot reach Redis at {_safe_url(url)}: {exc}")
    return url, client


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    return config.mask_password(url)


def _keys():
    from banner_server.keys import Keys

    return Keys(config.KEY_PREFIX.get())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="banner-server")
def main():
    """Pick each campaign's best banners per quarter of an hour, and serve them.

    \b
    Typical session:
      banners sample-data data/           # or your marketing exports
      banners load data/ --seed 7         # validate, compute, publish
      banners show --campaign 7           # what was selected
      banners rollback                    # back to the version loaded before
      banners serve --bind 127.0.0.1:8000
    """


@main.command("sample-data")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=1, show_default=True,
              help="Seed of the generator.")
@click.option("--scale", type=click.FloatRange(min=0.0001, max=MAX_SAMPLE_SCALE), default=1.0, show_default=True,
              help="Multiplies the row counts (1.0: like the real set, ~800k rows).")
def sample_data(out_dir: Path, seed: int, scale: float):
    """Write a realistic data set into OUT_DIR/{1,2,3,4}/.

    Campaigns 1-50, banners 100-500, the real set's row counts times --scale, with
    campaigns in every scenario, ties and a few duplicate rows.  It does not use
    Redis.

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
              help="Seed of the random fill; default: a new one, printed and stored (with --dry-run: the "
              "current version's, so only the data's changes show).")
@click.option("--reject-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where rejected rows go, one JSON line each; its folder must exist "
              "[default: STATE_DIR/rejected.jsonl; with --dry-run STATE_DIR/rejected.dry-run.jsonl].")
@click.option("--strict", is_flag=True, help="Publish nothing if any input is invalid.")
@click.option("--dry-run", is_flag=True, help="Do everything but publish: print what would change against "
              "the current version. Takes no lock; leaves the serving version's reject log alone.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings, errors and the final line.")
@_redis_options
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

    With --dry-run, everything but the publishing: it prints, per quarter, the
    campaigns that would be added (+) or removed (-) and the banners that would
    change in a campaign (~), against the current version.  It takes no lock (a
    load may run meanwhile), needs Redis all the same, and writes its rejections
    only to its own log.

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
    import redis

    from loader.publish import LoadLock, PublishError

    if reject_log is None:
        reject_log = state_dir / ("rejected.dry-run.jsonl" if dry_run else "rejected.jsonl")
        reject_log_folder = state_dir  # ours to create, like the embedded Redis does
    elif not reject_log.parent.is_dir():
        raise click.BadParameter(f"{reject_log}: folder {reject_log.parent} does not exist", param_hint="--reject-log")
    else:
        reject_log_folder = None
    url, client = connect(redis_url, state_dir)  # before reading any file (SPEC §6)
    if dry_run:
        against = _DryRun.read(client, url)
        _load(data_dir, seed, reject_log, reject_log_folder, strict, quiet, redis_url, url, client, None, against)
        return
    lock = LoadLock(client, _keys())
    try:
        lock.acquire()  # from the start, not just around publishing: one load at a time
    except PublishError as exc:
        fail(str(exc))
    except redis.RedisError as exc:
        fail(f"cannot take the load lock in Redis at {_safe_url(url)}: {exc}")
    try:
        _load(data_dir, seed, reject_log, reject_log_folder, strict, quiet, redis_url, url, client, lock)
    finally:
        lock.release()


class _DryRun:
    """What a dry run compares with: the current version, its selections and its seed."""

    def __init__(self, version: str | None, records: list[dict], seed: int | None):
        self.version, self.records, self.seed = version, records, seed

    @classmethod
    def read(cls, client, url: str) -> "_DryRun":
        import redis

        from banner_server.catalog import read_selections

        keys = _keys()
        try:
            version, records = read_selections(client, keys)
            seed = json.loads(client.hget(keys.meta(version), "seed") or "null") if version else None
        except redis.RedisError as exc:
            fail(f"cannot read the current version from Redis at {_safe_url(url)}: {exc}")
        return cls(version, records, seed if isinstance(seed, int) and seed >= 0 else None)


def _load(data_dir, seed, reject_log, reject_log_folder, strict, quiet, redis_url, url, client, lock,
          dry_run: _DryRun | None = None):
    import redis

    from loader.files import find_csv_files
    from loader.pipeline import compute
    from loader.publish import CleanupFailed, PublishError, publish

    files = find_csv_files(data_dir)
    if not files:
        fail(f"no *.csv files under {data_dir}: nothing published")
    whose = ""
    if seed is None and dry_run and dry_run.seed is not None:
        seed, whose = dry_run.seed, f" (version {dry_run.version}'s; --seed tries another)"
    seed = secrets.randbelow(2**31) if seed is None else seed
    if not quiet:
        click.echo(f"seed: {seed}{whose}")
    try:
        if reject_log_folder is not None:
            reject_log_folder.mkdir(parents=True, exist_ok=True)
        rejects = _RejectLog(reject_log)
    except OSError as exc:
        fail(f"cannot write the reject log {reject_log}: {exc.strerror or exc}")
    with rejects:
        show_progress = not quiet and sys.stderr.isatty()
        if show_progress:
            total = sum(f.path.stat().st_size for f in files if f.path.is_file())
            with click.progressbar(length=total, label="reading", file=sys.stderr) as bar:
                result = compute(data_dir, seed, progress=bar.update)
        else:
            result = compute(data_dir, seed)
        try:
            rejects.write(result.rejects)
        except OSError as exc:
            fail(f"cannot write the reject log {reject_log}: {exc.strerror or exc}")
        if not quiet:
            _print_summary(result)

        def commit_log() -> Path:
            try:
                return rejects.commit()
            except OSError as exc:
                warn(f"could not put the reject log in place ({exc.strerror or exc}); this load's rejections "
                     f"are in {rejects.tmp}")
                return rejects.tmp

        def nothing_published(why: str):
            if dry_run:  # its log is its own, whatever the outcome
                where = (f"; its {result.rejects.height} rejection(s) are in {commit_log()}"
                         if result.rejects.height else "")
                fail(f"{why}: a load would publish nothing (dry run){where}")
            failed = rejects.abandon()
            where = (f"; this load's {result.rejects.height} rejection(s) are in {failed}"
                     f" ({reject_log} still describes the serving version)" if failed and result.rejects.height else "")
            fail(f"{why}: nothing published{where}")

        if result.accepted_rows == 0:
            nothing_published(f"no valid data under {data_dir}")
        if result.selections.height == 0:
            nothing_published(f"no campaign under {data_dir} has an accepted impression or click")
        if strict and result.invalid:
            nothing_published(f"--strict: {result.invalid} invalid input(s)")

        if dry_run:
            log_path = commit_log()
            changes = _dry_run_changes(result, dry_run, quiet)
            _finish(result, data_dir, log_path, f"dry run, nothing published (seed {seed})", changes)

        meta = {
            "loaded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seed": seed,
            "data_dir": str(data_dir.resolve()),
            "quarters": result.quarters,
            "accepted_rows": result.accepted_rows,
            "rejected_rows": result.rejected,  # every rejection, logged or not
            "selections": result.selections.height,
        }
        cleanup_failed = None
        try:
            ver = publish(client, _keys(), result, meta, lock)
        except CleanupFailed as exc:
            ver, cleanup_failed = exc.version, exc.reason
        except PublishError as exc:
            nothing_published(str(exc))
        except redis.exceptions.OutOfMemoryError:
            nothing_published(f"Redis at {_safe_url(url)} is out of memory (OOM: maxmemory reached), the previous "
                              "data keeps serving; raise maxmemory (BANNERS_REDIS_MAXMEMORY for the embedded one) "
                              "or free memory, then load again")
        except redis.RedisError as exc:
            reason = str(exc).rsplit(" caused error: ", 1)[-1][:300]  # not the pipeline's whole command
            nothing_published(f"publishing to {_safe_url(url)} failed, the previous data keeps serving: {reason}")
        log_path = commit_log()
    if not redis_url:
        _save_embedded(client)
    if cleanup_failed:
        warn(f"version {ver} is published and serving, but removing the old versions failed "
             f"({cleanup_failed[:300]}); the next load removes them")
    _finish(result, data_dir, log_path, f"published version {ver} (seed {seed})")


def _finish(result, data_dir: Path, log_path: Path, head: str, tail: str | None = None):
    """The end of a load or a dry run: its warnings, one final line, its exit status."""
    missing = _missing_quarters(result, data_dir)
    for line in missing:
        warn(line)
    if result.invalid:
        warn(f"{result.invalid} invalid input(s) rejected, see {log_path}")
    n = result.rejected  # every rejection counted; the log holds the first ones of each kind
    click.echo(f"{head}: {result.selections.height} banners selected in "
               f"quarter(s) {', '.join(map(str, result.quarters))}; "
               + (f"{n} rejection(s) logged to {log_path}" if n else "no rejections")
               + (f"; {tail}" if tail else ""))
    sys.exit(EXIT_REJECTED if result.invalid or missing else EXIT_OK)


def _save_embedded(client) -> None:
    """The embedded instance keeps what was published (or switched to) across restarts."""
    import redis

    try:
        client.bgsave()
    except redis.RedisError:
        pass


def _dry_run_changes(result, against: _DryRun, quiet: bool) -> str:
    """Prints (unless quiet) what publishing `result` would change; returns it in one phrase."""
    import textwrap

    import polars as pl

    from loader.publish import selection_changes

    changes = selection_changes(against.records, result.selections)
    counts = dict(changes.group_by("change").len().iter_rows())
    versus = f"version {against.version}" if against.version else "nothing published yet"
    if not changes.height:
        total = f"no change against {versus}"
    else:
        total = (f"against {versus}: {counts.get('added', 0)} campaign(s) added, {counts.get('removed', 0)} "
                 f"removed, {counts.get('changed', 0)} with other banners (over all quarters)")
    if quiet:
        return total
    click.echo(f"changes against {versus}:" if against.version else "changes (nothing is published yet):")
    quarters = sorted({r["quarter"] for r in against.records} | set(result.quarters))
    wrap = textwrap.TextWrapper(width=100, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False)
    for q in quarters:
        of_q = changes.filter(pl.col("quarter") == q)
        if not of_q.height:
            click.echo(f"quarter {q}: no change")
            continue
        n = dict(of_q.group_by("change").len().iter_rows())
        click.echo(f"quarter {q}: {n.get('added', 0)} campaign(s) added, {n.get('removed', 0)} removed, "
                   f"{n.get('changed', 0)} with other banners")
        for change, sign in (("added", "+"), ("removed", "-")):
            ids = of_q.filter(pl.col("change") == change)["campaign_id"].to_list()
            if ids:
                click.echo(wrap.fill(f"{sign} campaign(s) {', '.join(map(str, ids))}"))
        for c, added, removed in of_q.filter(pl.col("change") == "changed").select(
                "campaign_id", "banners_added", "banners_removed").iter_rows():
            banners = [f"+{b}" for b in added] + [f"-{b}" for b in removed]
            click.echo(wrap.fill(f"~ campaign {c}: {' '.join(banners)}"))
    return total


def warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)


def _missing_quarters(result, data_dir: Path) -> list[str]:
    """One sentence per quarter the load leaves without data (SPEC §6: said in words, exit 3)."""
    out = []
    for q in sorted({1, 2, 3, 4} - set(result.quarters)):
        of_q = [f for f in result.files if f.quarter == q]
        if not of_q:
            why = f"no file of quarter {q} under {data_dir}"
        elif all(f.rejected for f in of_q):
            why = f"all {len(of_q)} file(s) of quarter {q} were rejected"
        else:
            why = "its files hold no accepted impression or click"
        first = (q - 1) * 15
        out.append(f"quarter {q} has no data: {why}; every campaign answers 404 in minutes "
                   f"{first}-{first + 14} of each hour")
    return out


class _RejectLog:
    """The reject log, replaced only by a load that publishes (SPEC §6).

    Rows go to a temporary file beside the log; `commit` renames it over the log (one
    atomic step), and a load that publishes nothing `abandon`s it to NAME.failed.jsonl,
    so the log keeps describing the serving version.  A target that is not a regular
    file (/dev/null, a pipe) is written directly: there is nothing to rename over.
    """

    def __init__(self, path: Path):
        self.path = path
        self.direct = path.exists() and not path.is_file()
        # A name of its own ("x": never someone else's file), with the umask's mode.
        self.tmp = path if self.direct else path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        self.fh = open(self.tmp, "w" if self.direct else "x", encoding="utf-8")
        self.done = False

    @property
    def failed_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.failed{self.path.suffix or '.jsonl'}")

    def write(self, rejects) -> None:
        for row in rejects.iter_rows(named=True):
            self.fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.fh.flush()

    def commit(self) -> Path:
        self.done = True  # if the rename fails, the rows stay in tmp (the caller says so)
        self.fh.close()
        if not self.direct:
            os.replace(self.tmp, self.path)
        return self.path

    def abandon(self) -> Path | None:
        """Keeps the log; returns where this load's rejections went (None: nowhere)."""
        if self.done:
            return None
        self.done = True
        self.fh.close()
        if self.direct:
            return None
        try:
            os.replace(self.tmp, self.failed_path)
            return self.failed_path
        except OSError:
            self.tmp.unlink(missing_ok=True)
            return None

    def __enter__(self) -> "_RejectLog":
        return self

    def __exit__(self, *exc) -> None:
        if not self.done:  # left by an error before the outcome was known
            self.done = True
            self.fh.close()
            if not self.direct:
                self.tmp.unlink(missing_ok=True)


def _print_summary(result) -> None:
    from loader.pipeline import REASONS

    cols = ["quarter", "kind", "files", "files_rejected", "rows", "accepted", *REASONS]
    rows = [[("-" if v is None else str(v)) for v in r] for r in result.summary.select(cols).iter_rows()]
    _print_table(cols, rows)
    for f in result.files:
        if f.rejected:
            click.echo(f"file rejected: {f.rel}: {f.rejected}: {f.detail}")


def _print_table(cols: list[str], rows: list[list[str]], left: tuple[str, ...] = ("kind",)) -> None:
    """Aligned columns under a header row: text columns to the left, numbers to the right."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]

    def line(values):
        return "  ".join(v.ljust(w) if c in left else v.rjust(w) for c, v, w in zip(cols, values, widths)).rstrip()

    click.echo(line(cols))
    for r in rows:
        click.echo(line(r))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON array, newest first.")
@_redis_options
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
    import redis

    from banner_server.catalog import list_versions

    url, client = connect(redis_url, state_dir, start=False)
    try:
        kept = list_versions(client, _keys())
    except redis.RedisError as exc:
        fail(f"cannot read the versions from Redis at {_safe_url(url)}: {exc}")
    if as_json:
        click.echo(json.dumps(kept))
        return
    if not kept:
        click.echo("nothing published yet: run `banners load DATA_DIR` first")
        return

    def cell(value) -> str:
        if isinstance(value, list):
            return ",".join(map(str, value)) or "-"
        return "-" if value is None else str(value)

    cols = ["", "version", "loaded_at", "seed", "quarters", "banners", "data_dir"]
    rows = [["*" if v["current"] else "", *(cell(v[c]) for c in cols[1:])] for v in kept]
    _print_table(cols, rows, left=("", "version", "loaded_at", "quarters", "data_dir"))


@main.command()
@click.argument("version", required=False)
@_redis_options
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
    import redis

    from loader.publish import LoadLock, LoadRunning, RollbackError, rollback as switch_back

    url, client = connect(redis_url, state_dir, start=False)
    lock = LoadLock(client, _keys())
    try:
        lock.acquire()
    except LoadRunning:
        fail("a load or another rollback is running: nothing switched; try again when it ends")
    except redis.RedisError as exc:
        fail(f"cannot take the load lock in Redis at {_safe_url(url)}: {exc}")
    try:
        before, now = switch_back(client, _keys(), version, lock)
    except RollbackError as exc:
        kept = ", ".join(f"{v} (current)" if v == exc.current else v for v in reversed(exc.kept))
        fail(f"{exc}; kept versions, newest first: {kept or 'none'}")
    except redis.RedisError as exc:
        fail(f"rolling back in Redis at {_safe_url(url)} failed ({exc}); `banners versions` says which version "
             "is current")
    finally:
        lock.release()
    if before == now:
        click.echo(f"version {now} is already current: nothing changed")
        return
    if not redis_url:
        _save_embedded(client)
    click.echo(f"version {now} is current again (was {before}); workers serve it from their next request")


@main.command()
@click.option("--quarter", type=click.IntRange(1, 4), default=None, help="Only this quarter.")
@click.option("--campaign", type=click.IntRange(min=0), default=None, help="Only this campaign.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, one object per quarter and campaign.")
@_redis_options
def show(quarter, campaign, as_json, redis_url, state_dir):
    """Print the published selections, one banner per line in selection order.

    Exits 1 when nothing is published or nothing matches --quarter/--campaign.
    Never starts the embedded Redis.

    \b
    Example:
      banners show --quarter 2 --campaign 7
      banners show --json | jq '.[] | select(.scenario == "top_clicks")'
    """
    from banner_server.catalog import read_selections

    _, client = connect(redis_url, state_dir, start=False)
    ver, records = read_selections(client, _keys())
    if ver is None:
        fail("nothing published yet: run `banners load DATA_DIR` first")
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
         b["source"], _money(b["revenue"]), str(b["clicks"])]
        for r in records
        for rank, b in enumerate(r["banners"], 1)
    ]
    _print_table(cols, rows, left=("scenario", "source"))


def _money(value: float) -> str:
    """Cents as cents; a revenue with finer parts keeps them (the ranking sees them)."""
    return f"{value:.2f}" if round(value, 2) == value else f"{value:.10g}"


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_redis_options
def status(as_json, redis_url, state_dir):
    """What is loaded: version, time, seed, and every file with its hash and row counts.

    Never starts the embedded Redis: with none running it says where it looked, exit 1.

    \b
    Example:
      banners status --json
    """
    from banner_server.catalog import read_status

    _, client = connect(redis_url, state_dir, start=False)
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
        click.echo(f"  {f['sha256'][:12]}  {f['path']:<32} q{f['quarter'] or '-'} {f['kind'] or '-':<12} {state}")


# Seconds after an hour's end before `export` removes its events: a host whose clock
# runs a little behind, or a request in flight at the turn of the hour, may still add
# to it for a moment, and what lands after the export read it would be lost.
EXPORT_SETTLE = 60


def _clock(tz: str | None):
    """The export's clock (tests replace it): now in the server's time zone."""
    from banner_server.clock import system_clock

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
    from banner_server.clock import hour_of

    current = hour_of(now)
    moment = now.replace(minute=0, second=0, microsecond=0).astimezone(dt.timezone.utc)
    while hour_of(moment.astimezone(now.tzinfo)) >= current:
        moment -= dt.timedelta(hours=1)
    return hour_of(moment.astimezone(now.tzinfo))


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--hour", metavar="YYYY-MM-DDTHH", default=None,
              help="The local hour to export [default: the last one that is over].")
@click.option("--keep", is_flag=True, help="Leave the hour's events in Redis (default: removed once written).")
@_setting_option("--tz", config.TZ, metavar="ZONE",
                 help="The server's time zone, in which hours are counted [default: the system's].")
@_redis_options
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
    import redis as redis_py

    from banner_server.clock import hour_of
    from banner_server.events import EventStore
    from banner_server.topology import CLIENT_ERRORS
    from loader.export import hour_files, write_files

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
    events = EventStore(client, _keys())
    try:
        recorded = events.read_hour(hour)
    except (*CLIENT_ERRORS, redis_py.RedisError) as exc:
        fail(f"cannot read hour {hour} from Redis at {_safe_url(url)}: {exc}")
    if recorded.empty:
        click.echo(f"nothing recorded in hour {hour} ({now:%Z}): no events in Redis (none happened, an earlier "
                   "export removed them, or they are older than --keep-events); no file written")
        return
    try:
        written = write_files(out_dir, hour_files(hour, recorded.impressions, recorded.clicks, recorded.conversions))
    except OSError as exc:
        fail(f"cannot write the files under {out_dir}: {exc.strerror or exc}; nothing removed from Redis")
    for q, (imps, clicks, convs) in recorded.counts().items():
        click.echo(f"quarter {q}: {imps} impressions, {clicks} clicks, {convs} conversions")
    if recorded.unreadable:
        warn(f"{recorded.unreadable} recorded event(s) could not be read and were left out")
    click.echo(f"wrote {len(written)} files for hour {hour} under {out_dir}")
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
    except (*CLIENT_ERRORS, redis_py.RedisError) as exc:
        fail(f"the files are written, but removing hour {hour}'s events from Redis failed ({exc}); they expire "
             "after --keep-events, or export the hour again")
    click.echo(f"removed hour {hour}'s events from Redis (--keep keeps them)")


def _variables_without_option() -> str:
    rows = [(f"{v.name}={v.default}", v.doc.replace("`", "")) for v in config.VARIABLES.values()
            if not v.option and v is not config.METRICS_DIR]  # serve sets that one itself
    width = max(len(name) for name, _ in rows)
    return "\b\nVariables without an option (README.md lists every variable):\n" + "\n".join(
        f"  {name:<{width}}  {doc}" for name, doc in rows)


@main.command(epilog=_variables_without_option())
@_setting_option("--bind", config.BIND, metavar="ADDRESS",
                 help="HOST[:PORT] (port 8000 when none), tcp://HOST:PORT, [IPv6]:PORT or unix:PATH.")
@_setting_option("--workers", config.WORKERS, metavar="N", help="gunicorn worker processes [default: two per core].")
@_setting_option("--quarter", config.QUARTER, metavar="1-4", help="Serve this quarter whatever the time (demos, tests).")
@_setting_option("--images", config.IMAGES, metavar="DIR",
                 help="Folder of image_<id>.png pictures, served as /banners/<id>.png instead of generated SVGs.")
@_setting_option("--tz", config.TZ, metavar="ZONE",
                 help="Time zone of the quarter, an IANA name like Asia/Kathmandu [default: the system's].")
@_setting_option("--visitor-ttl", config.VISITOR_TTL, metavar="SECONDS",
                 help="Seconds a visitor's last banner is remembered in Redis.")
@click.option("--cookie-secure", is_flag=True, envvar=config.COOKIE_SECURE.name, show_envvar=True,
              type=_BoolSetting(config.COOKIE_SECURE), help="Mark the visitor cookie Secure (behind HTTPS).")
@_setting_option("--trusted-proxy", config.TRUSTED_PROXIES, parse=config.parse_network, multiple=True,
                 metavar="CIDR", help="Believe X-Forwarded-For from this proxy network (repeatable; in the "
                 "variable, separated by commas).")
@_setting_option("--access-log", config.ACCESS_LOG, metavar="PATH",
                 help="Log every request to this file ('-' for standard output).")
@_setting_option("--cors-origin", config.CORS_ORIGINS, parse=config.parse_origin, multiple=True, metavar="ORIGIN",
                 help="Let this site's pages read the JSON answers with the visitor cookie (repeatable; `*`: "
                 "any site, without the cookie). embed.js needs it.")
@_setting_option("--frame-ancestors", config.FRAME_ANCESTORS, metavar="SOURCES",
                 help="Who may frame /campaigns/<id>/embed (CSP frame-ancestors), e.g. https://shop.example.")
@_setting_option("--log-format", config.LOG_FORMAT, metavar="text|json",
                 help="text for people, json for machines: one JSON object a line.")
@_setting_option("--keep-events", config.KEEP_EVENTS, metavar="SECONDS",
                 help="Seconds recorded impressions, clicks and conversions are kept for `banners export`.")
@_redis_options
def serve(bind, workers, quarter, images, tz, visitor_ttl, cookie_secure, trusted_proxy, access_log, cors_origin,
          frame_ancestors, log_format, keep_events, redis_url, state_dir):
    """Serve banners over HTTP with gunicorn and meinheld workers.

    \b
    GET /campaigns/<id>        one banner of the campaign (HTML, or JSON with
                               Accept: application/json or ?format=json);
                               also /campaign/<id>
    GET /banners/<id>.svg      the banner's picture (.png with --images)
    GET /  /healthz  /readyz  /metrics

    Every option is also a BANNERS_* variable (below, those without an option).
    INT or TERM stops it within about a second; HUP replaces the workers.

    \b
    Example:
      banners serve --bind 0.0.0.0:8000 --workers 4 --images ../shared/datachef/images
    """
    import banner_server
    from banner_server.bind import bind_problem, describe

    address = describe(bind)
    problem = bind_problem(bind)
    if problem:
        fail(f"cannot listen on {address.removeprefix('http://')}: {problem}")
    env = {
        config.BIND.name: bind,
        config.WORKERS.name: str(workers or ""),
        config.QUARTER.name: str(quarter or ""),
        config.TZ.name: tz or "",
        config.IMAGES.name: str(images) if images else "",
        config.VISITOR_TTL.name: str(visitor_ttl),
        config.COOKIE_SECURE.name: "1" if cookie_secure else "",
        config.TRUSTED_PROXIES.name: ",".join(map(str, trusted_proxy)),
        config.ACCESS_LOG.name: access_log or "",
        config.LOG_FORMAT.name: log_format or "",
        config.CORS_ORIGINS.name: ",".join(cors_origin),
        config.FRAME_ANCESTORS.name: frame_ancestors or "",
        config.KEEP_EVENTS.name: str(keep_events),
        config.REDIS_URL.name: redis_url or "",
        config.STATE_DIR.name: str(state_dir),
        config.METRICS_DIR.name: str((state_dir / "metrics").resolve()),
    }
    try:
        config.check({**os.environ, **env})  # what gunicorn and each worker will read: fail here, not in N workers
    except config.SettingError as exc:
        fail(f"bad setting: {exc}", EXIT_USAGE)
    url, client = connect(redis_url, state_dir)  # only once everything else is known to be right
    _say_what_will_be_served(client, images)
    client.close()
    env[config.REDIS_URL.name] = url
    os.environ.update(env)
    click.echo(f"serving on {address} (Redis {_safe_url(url)})", err=True)
    sys.stderr.flush()
    # The settings live in the package, so an installed wheel serves as a checkout does.
    conf = Path(banner_server.__file__).resolve().parent / "gunicorn_conf.py"
    os.execv(sys.executable, [sys.executable, "-m", "banner_server.gunicorn_run", "-c", str(conf)])


def _say_what_will_be_served(client, images: Path | None) -> None:
    """Start-up notes on what the workers will find: nothing published yet, or a
    pictures folder that holds few of the published banners' pictures."""
    import redis as redis_py

    from banner_server.catalog import read_selections
    from banner_server.images import ImageDir

    try:
        version, records = read_selections(client, _keys())
    except redis_py.RedisError:
        return
    if version is None:
        warn("nothing is published yet: campaign pages answer 503 until `banners load DATA_DIR` publishes "
             "(`banners sample-data DIR` writes an example)")
        return
    if images:
        banners = {b["banner_id"] for r in records for b in r["banners"]}
        pictures = ImageDir(images)
        have = sum(1 for b in banners if pictures.has(b))
        message = f"pictures: {have} of the {len(banners)} published banners have an image_<id>.png in {images}"
        if have < len(banners):
            message += "; the others are served as generated SVGs"
        warn(message) if have < len(banners) else click.echo(message, err=True)


@main.group()
def redis():
    """Manage the embedded Redis (only used without --redis-url).

    \b
    Example:
      banners redis start          # prints unix:///.../var/redis.sock
      BANNERS_STATE_DIR=/srv/banners banners redis stop
    """


@redis.command("start")
@_state_dir_option
def redis_start(state_dir):
    """Start the embedded Redis (or find it running) and print its URL.

    \b
    Example:
      redis-cli -s "$(banners redis start | sed 's|unix://||')" ping
    """
    from banner_server.embedded_redis import EmbeddedRedis, EmbeddedRedisError

    try:
        click.echo(EmbeddedRedis(state_dir).ensure_running())
    except config.SettingError as exc:
        fail(str(exc), EXIT_USAGE)
    except EmbeddedRedisError as exc:
        fail(str(exc))


@redis.command("stop")
@_state_dir_option
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
