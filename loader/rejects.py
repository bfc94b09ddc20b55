"""Row rejections as they travel through the loader, and how many of them are logged.

Every rejection is counted exactly, per file and reason (the load summary, `banners
status`, the exit code).  Only the first LOGGED of each file and reason keep their
own reject-log line; one summary line per file and reason says how many more there
were.  So two million duplicate rows cost a few hundred kilobytes of log, and no
per-row detail string is ever built beyond the logged ones.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import polars as pl

LOGGED = 1000
REASONS = ("duplicate_row", "conflict", "orphan", "invalid")  # of rows; files add duplicate_file

SCHEMA = {
    "file_idx": pl.UInt32,
    "line": pl.UInt32,
    "reason": pl.String,
    "detail": pl.String,
    "dup_file_idx": pl.UInt32,
    "dup_line": pl.UInt32,
}
COUNT_SCHEMA = {"file_idx": pl.UInt32, "reason": pl.String, "n": pl.UInt32}


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def empty_counts() -> pl.DataFrame:
    return pl.DataFrame(schema=COUNT_SCHEMA)


def counts(rows: pl.LazyFrame) -> pl.LazyFrame:
    """(file_idx, reason, n) of rows that each carry a file_idx and a reason."""
    return rows.group_by("file_idx", "reason").agg(pl.len().cast(pl.UInt32).alias("n"))


def first_logged(rows: pl.LazyFrame) -> pl.LazyFrame:
    """The first LOGGED rows of each file and reason, of rows whose files come one
    after the other (file order), each file's rows in line order.

    A row's rank among its file's rows of its reason is the running count of its
    reason minus that count where its file began: no window over millions of rows
    (`int_range().over(...)` cost 166 MB on two million duplicates, this 23 MB).
    """
    starts = pl.col("file_idx").ne_missing(pl.col("file_idx").shift(1))
    rank = pl.lit(None, dtype=pl.UInt32)
    for reason in REASONS:
        hit = (pl.col("reason") == reason).cast(pl.UInt32)
        seen = hit.cum_sum()
        before = pl.when(starts).then(seen - hit).forward_fill()  # its count where the file began
        rank = pl.when(pl.col("reason") == reason).then(seen - before).otherwise(rank)
    return rows.filter(rank <= LOGGED)


class RejectLog:
    """The reject log's writer: replaced only by a load that publishes (SPEC §6).

    Rows go to a temporary file beside the log; `commit` renames it over the log (one
    atomic step), and a load that publishes nothing `abandon`s it to NAME.failed.jsonl,
    so the log keeps describing the serving version.  A target that is not a regular
    file (/dev/null, a pipe) is written directly: there is nothing to rename over.
    Created 0600 whatever the umask: rejected rows quote the marketing exports.
    """

    MODE = 0o600

    def __init__(self, path: Path):
        self.path = path
        self.direct = path.exists() and not path.is_file()
        # A name of its own (O_EXCL: never someone else's file).
        self.tmp = path if self.direct else path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        if self.direct:
            self.fh = open(self.tmp, "w", encoding="utf-8")
        else:
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.MODE)
            os.fchmod(fd, self.MODE)  # os.open's mode goes through the umask: exactly 0600, whatever it is
            self.fh = os.fdopen(fd, "w", encoding="utf-8")
        self.done = False

    @property
    def failed_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.failed{self.path.suffix or '.jsonl'}")

    def write(self, rejects: pl.DataFrame) -> None:
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
        if not self._close() or self.direct:
            return None
        try:
            os.replace(self.tmp, self.failed_path)
            return self.failed_path
        except OSError:
            self.tmp.unlink(missing_ok=True)
            return None

    def _close(self) -> bool:
        """Closes the file; False when its last rows could not be written (a full disk:
        the load's outcome is said all the same, never a traceback)."""
        try:
            self.fh.close()
            return True
        except OSError:
            return False

    def __enter__(self) -> "RejectLog":
        return self

    def __exit__(self, *exc) -> None:
        if not self.done:  # left by an error before the outcome was known
            self.done = True
            self._close()
            if not self.direct:
                self.tmp.unlink(missing_ok=True)
