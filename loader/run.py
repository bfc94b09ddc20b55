"""A load from start to end: find the files, pick the seed, compute, write the reject
log, publish (or, for a dry run, compare with the current version).

`run(LoadOptions(...))` returns what happened as a value, never prints and never ends
the process: `Published`, `DryRun` (with its changes) or `NothingPublished` (a reason
code and the sentence to say).  `banners load` prints it and picks the exit status.
Redis errors of the steps it takes are outcomes too; a bug is an exception.
"""

from __future__ import annotations

import datetime as dt
import secrets
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager

import redis

from banner_server.config import mask_password
from banner_server.layout.keys import Keys
from banner_server.text import clean

from . import pipeline, publish as publishing  # by module: tests hold or break their steps there
from .changes import Baseline, Changes, dry_run_changes
from .files import find_csv_files
from .pipeline import LoadResult
from .publish import CleanupFailed, LoadLock, PublishError
from .rejects import RejectLog


class Report:
    """What a load says while it runs (the CLI prints it); by default, nothing."""

    def seed(self, seed: int, whose: str) -> None:
        """The seed is chosen (`whose`: where it comes from, or "")."""

    def reading(self, total_bytes: int) -> ContextManager[Callable[[int], None] | None]:
        """Around the reading of the files: a progress callback (bytes read), or None."""
        return nullcontext(None)

    def computed(self, result: LoadResult) -> None:
        """The selections are computed (before anything is published)."""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class LoadOptions:
    data_dir: Path
    client: Any  # a connected redis-py (or cluster) client
    keys: Keys
    url: str  # where `client` is connected, for messages (its password is masked)
    reject_log: Path
    reject_log_folder: Path | None = None  # created when missing (the state folder is ours)
    seed: int | None = None  # None: a new one (a dry run: the current version's)
    strict: bool = False  # nothing published if any input is invalid
    dry_run: bool = False  # no lock, no publishing: the changes against the current version
    lock: LoadLock | None = None  # default: the load lock of `keys`, taken for the whole load
    report: Report = field(default_factory=Report)
    now: Callable[[], dt.datetime] = _utc_now  # the version's loaded_at
    new_seed: Callable[[], int] = lambda: secrets.randbelow(2**31)


@dataclass(frozen=True)
class Loaded:
    """What a load that computed selections leaves: said in its final line and warnings."""

    seed: int
    result: LoadResult
    reject_log: Path  # where its rejections are
    missing: list[str]  # one sentence per quarter left without data
    warnings: list[str]  # said before the changes and the final line

    @property
    def incomplete(self) -> bool:
        """Published, but some input was invalid or a quarter has no data (exit 3)."""
        return bool(self.result.invalid or self.missing)


@dataclass(frozen=True)
class Published(Loaded):
    version: str = ""


@dataclass(frozen=True)
class DryRun(Loaded):
    changes: Changes | None = None


@dataclass(frozen=True)
class NothingPublished:
    reason: str  # no_files, redis, reject_log, no_valid_data, no_selections, strict, load_running, publish, oom
    message: str  # the whole sentence, ending with why nothing was published
    warnings: list[str] = field(default_factory=list)


Outcome = Published | DryRun | NothingPublished


def run(opts: LoadOptions) -> Outcome:
    safe_url = mask_password(opts.url)
    if opts.dry_run:
        try:
            baseline = Baseline.read(opts.client, opts.keys)
        except redis.RedisError as exc:
            return NothingPublished("redis", f"cannot read the current version from Redis at {safe_url}: {exc}")
        return _load(opts, baseline, None)
    lock = opts.lock or LoadLock(opts.client, opts.keys)
    try:
        lock.acquire()  # from the start, not just around publishing: one load at a time
    except PublishError as exc:
        return NothingPublished("load_running", str(exc))
    except redis.RedisError as exc:
        return NothingPublished("redis", f"cannot take the load lock in Redis at {safe_url}: {exc}")
    try:
        return _load(opts, None, lock)
    finally:
        lock.release()


def _load(opts: LoadOptions, baseline: Baseline | None, lock: LoadLock | None) -> Outcome:
    data_dir, log = opts.data_dir, opts.reject_log
    files = find_csv_files(data_dir)
    if not files:
        return NothingPublished("no_files", f"no *.csv files under {clean(data_dir)}: nothing published")
    seed, whose = opts.seed, ""
    if seed is None and baseline and baseline.seed is not None:
        seed, whose = baseline.seed, f" (version {baseline.version}'s; --seed tries another)"
    seed = opts.new_seed() if seed is None else seed
    opts.report.seed(seed, whose)
    try:
        if opts.reject_log_folder is not None:
            opts.reject_log_folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        rejects = RejectLog(log)
    except OSError as exc:
        return NothingPublished("reject_log", f"cannot write the reject log {clean(log)}: {exc.strerror or exc}: "
                                "nothing published")
    warnings: list[str] = []
    with rejects:
        total = sum(f.path.stat().st_size for f in files if f.path.is_file())
        with opts.report.reading(total) as progress:
            result = pipeline.compute(data_dir, seed, progress=progress)
        try:
            rejects.write(result.rejects)
        except OSError as exc:
            return NothingPublished("reject_log", f"cannot write the reject log {clean(log)}: {exc.strerror or exc}: "
                                "nothing published")
        opts.report.computed(result)

        def commit_log() -> Path:
            try:
                return rejects.commit()
            except OSError as exc:
                warnings.append(f"could not put the reject log in place ({exc.strerror or exc}); this load's "
                                f"rejections are in {clean(rejects.tmp)}")
                return rejects.tmp

        def nothing_published(reason: str, why: str) -> NothingPublished:
            n = result.rejects.height
            if baseline is not None:  # a dry run's log is its own, whatever the outcome
                where = f"; its {n} rejection(s) are in {clean(commit_log())}" if n else ""
                return NothingPublished(reason, f"{why}: a load would publish nothing (dry run){where}", warnings)
            failed = rejects.abandon()
            where = (f"; this load's {n} rejection(s) are in {clean(failed)} ({clean(log)} still describes the "
                     "serving version)" if failed and n else "")
            return NothingPublished(reason, f"{why}: nothing published{where}", warnings)

        if result.accepted_rows == 0:
            return nothing_published("no_valid_data", f"no valid data under {clean(data_dir)}")
        if result.selections.height == 0:
            return nothing_published("no_selections",
                                     f"no campaign under {clean(data_dir)} has an accepted impression or click")
        if opts.strict and result.invalid:
            return nothing_published("strict", f"--strict: {result.invalid} invalid input(s)")

        if baseline is not None:
            log_path = commit_log()
            return DryRun(seed, result, log_path, missing_quarters(result, data_dir), warnings,
                          changes=dry_run_changes(result, baseline))

        meta = {
            "loaded_at": opts.now().astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
            "seed": seed,
            "data_dir": str(data_dir.resolve()),
            "quarters": result.quarters,
            "accepted_rows": result.accepted_rows,
            "rejected_rows": result.rejected,  # every rejection, logged or not
            "selections": result.selections.height,
        }
        cleanup_failed = None
        safe_url = mask_password(opts.url)
        try:
            version = publishing.publish(opts.client, opts.keys, result, meta, lock)
        except CleanupFailed as exc:
            version, cleanup_failed = exc.version, exc.reason
        except PublishError as exc:
            return nothing_published("publish", str(exc))
        except redis.exceptions.OutOfMemoryError:
            return nothing_published("oom", f"Redis at {safe_url} is out of memory (OOM: maxmemory reached), the "
                                     "previous data keeps serving; raise maxmemory (BANNERS_REDIS_MAXMEMORY for the "
                                     "embedded one) or free memory, then load again")
        except redis.RedisError as exc:
            reason = str(exc).rsplit(" caused error: ", 1)[-1][:300]  # not the pipeline's whole command
            return nothing_published("redis", f"publishing to {safe_url} failed, the previous data keeps serving: "
                                     f"{reason}")
        log_path = commit_log()
    if cleanup_failed:
        warnings.append(f"version {version} is published and serving, but removing the old versions failed "
                        f"({cleanup_failed[:300]}); the next load removes them")
    return Published(seed, result, log_path, missing_quarters(result, data_dir), warnings, version=version)


def missing_quarters(result: LoadResult, data_dir: Path) -> list[str]:
    """One sentence per quarter the load leaves without data (SPEC §6: said in words, exit 3)."""
    out = []
    for q in sorted({1, 2, 3, 4} - set(result.quarters)):
        of_q = [f for f in result.files if f.quarter == q]
        if not of_q:
            why = f"no file of quarter {q} under {clean(data_dir)}"
        elif all(f.rejected for f in of_q):
            why = f"all {len(of_q)} file(s) of quarter {q} were rejected"
        else:
            why = "its files hold no accepted impression or click"
        first = (q - 1) * 15
        out.append(f"quarter {q} has no data: {why}; every campaign answers 404 in minutes "
                   f"{first}-{first + 14} of each hour")
    return out
