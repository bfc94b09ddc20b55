"""`banners load` without the Redis part: folder in, selections + rejects + summary out."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl

from . import rejects
from .campaigns import SCHEMA as CAMPAIGN_SCHEMA, latest, parse_campaigns, with_data
from .dedupe import accept_rows
from .files import KINDS, SourceFile, classify, find_csv_files, read_and_hash
from .rules import select_banners
from .validate import parse_rows, format_text, typed_schema

REASONS = rejects.REASONS  # the summary's columns (cli.py reads them here)


@dataclass
class LoadResult:
    files: list[SourceFile]
    selections: pl.DataFrame
    # The reject log: file, line, kind, reason, detail, duplicate_of; at most
    # rejects.LOGGED lines per file and reason, then one "not logged" summary line.
    rejects: pl.DataFrame
    summary: pl.DataFrame  # quarter, kind, files, rows, accepted, one column per reason
    accepted_rows: int
    # campaign_id, name, landing_url, cap_impressions, cap_window: the campaigns.csv rows that won, of the campaigns
    # the loaded data has (may be empty)
    campaigns: pl.DataFrame | None = None
    # Valid campaigns.csv campaigns left out because no impression or accepted click
    # names them (a company's master list): counted, not an error.
    campaigns_without_data: int = 0

    @property
    def invalid(self) -> int:
        """Rejections that are bad input (SPEC exit code 3), not mere duplicates: whole
        files and rows, every one counted (the log holds only the first ones)."""
        return sum((f.rejected == "invalid") + f.rejected_rows.get("invalid", 0) for f in self.files)

    @property
    def rejected(self) -> int:
        """Every rejection, whole files and rows, logged or not."""
        return sum((f.rejected is not None) + sum(f.rejected_rows.values()) for f in self.files)

    @property
    def quarters(self) -> list[int]:
        return sorted(set(self.selections["quarter"].to_list()))


def _read(src: SourceFile) -> tuple[bytes, str] | None:
    return None if src.rejected else read_and_hash(src)


def read_folder(
    data_dir: Path, progress: Callable[[int], None] | None = None
) -> tuple[list[SourceFile], dict[str, pl.DataFrame], pl.DataFrame, pl.DataFrame]:
    """Reads and validates every file; returns (files, valid rows by kind, the logged
    invalid rows, the invalid row counts)."""
    files = find_csv_files(data_dir)
    seen: dict[str, SourceFile] = {}
    parts: dict[str, list[pl.DataFrame]] = {kind: [] for kind in KINDS}
    invalid: list[pl.DataFrame] = []
    counts: dict[str, list] = {"file_idx": [], "reason": [], "n": []}
    campaign_rows: list[pl.DataFrame] = []
    # One file read ahead: its read and hash overlap the parse of the current one,
    # and at most two files' bytes are held at a time, however many files there are.
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(_read, files[0]) if files else None
        for idx, src in enumerate(files):
            current, ahead = ahead, (pool.submit(_read, files[idx + 1]) if idx + 1 < len(files) else None)
            try:
                read = current.result()
            except OSError as exc:
                src.rejected, src.detail = "invalid", f"cannot read: {exc.strerror}"
                continue
            finally:
                current = None  # the future holds the bytes: let them go with `data`
            if read is None:
                continue  # rejected when found (a folder that cannot be read)
            data, sha256 = read
            del read
            body = classify(src, data, sha256, seen)
            del data
            try:
                _parse(src, body, idx, parts, invalid, counts, campaign_rows)
            except (Exception, pl.exceptions.PanicException) as exc:
                # A bug of ours or of polars (see validate.format_text) costs the file,
                # said in its reject line, never the load or a traceback.
                _unexpected(src, exc)
            del body
            if progress:
                progress(src.size)
    frames = {
        kind: pl.concat(dfs, rechunk=False) if dfs else pl.DataFrame(schema=typed_schema(kind))
        for kind, dfs in parts.items()
    }
    frames["campaigns"] = latest(pl.concat(campaign_rows) if campaign_rows else pl.DataFrame(schema=CAMPAIGN_SCHEMA))
    logged = pl.concat(invalid) if invalid else rejects.empty()
    return files, frames, logged, pl.DataFrame(counts, schema=rejects.COUNT_SCHEMA)


def _parse(src: SourceFile, body: bytes | None, idx: int, parts: dict[str, list[pl.DataFrame]],
           invalid: list[pl.DataFrame], counts: dict[str, list], campaign_rows: list[pl.DataFrame]) -> None:
    """Parses one classified file's body into the folder's lists, appending to them
    only when the whole file is parsed."""
    if body is not None and src.kind == "campaigns":
        valid, logged, n_invalid = parse_campaigns(src, body, idx)
        campaign_rows.append(valid)
        invalid.append(logged)
    elif body is not None:
        parsed = parse_rows(src, body, idx)
        if src.kind == "impressions":
            # Distinct per piece already; once more over the file's pieces.
            parsed.valid = parsed.valid.lazy().unique().collect()  # (eager unique: 3x slower here)
        parts[src.kind].append(parsed.valid)
        invalid.append(parsed.invalid)
        n_invalid = parsed.n_invalid
    else:
        return
    if n_invalid:
        counts["file_idx"].append(idx)
        counts["reason"].append("invalid")
        counts["n"].append(n_invalid)


def _unexpected(src: SourceFile, exc: BaseException) -> None:
    """Rejects a file whose reading failed unexpectedly as `invalid`, the error in its
    detail.  _parse adds a file's rows only once all of it is parsed: there are none
    to take back."""
    message = " ".join(str(exc).split())[:200] or "no message"
    src.rejected, src.detail = "invalid", f"could not be read (an error of the loader: {type(exc).__name__}: {message})"
    src.rows = 0


def _names(files: list[SourceFile]) -> pl.DataFrame:
    return pl.DataFrame(
        {"file_idx": range(len(files)), "file": [f.rel for f in files], "kind": [f.kind for f in files]},
        schema={"file_idx": pl.UInt32, "file": pl.String, "kind": pl.String},
    )


def compute(
    data_dir: Path, seed: int, progress: Callable[[int], None] | None = None
) -> LoadResult:
    files, frames, invalid_logged, invalid_counts = read_folder(data_dir, progress)
    clicks, conversions, dup_logged, dup_counts = accept_rows(frames["clicks"], frames["conversions"])
    selections = select_banners(frames["impressions"], clicks, conversions, seed)

    counts = pl.concat([invalid_counts, dup_counts])
    for f in files:
        f.rejected_rows = {}
    for file_idx, reason, n in counts.iter_rows():
        files[file_idx].rejected_rows[reason] = n
    for f in files:
        f.accepted = f.rows - sum(f.rejected_rows.values())
    accepted_rows = sum(f.accepted for f in files if f.rejected is None)
    campaigns, without_data = with_data(
        frames["campaigns"], pl.concat([frames["impressions"]["campaign_id"], clicks["campaign_id"]]))
    return LoadResult(files, selections, reject_log(files, pl.concat([invalid_logged, dup_logged]), counts),
                      summarize(files), accepted_rows, campaigns, without_data)


def reject_log(files: list[SourceFile], logged: pl.DataFrame, counts: pl.DataFrame) -> pl.DataFrame:
    """The reject log's lines: each file's whole-file rejection, its logged rows in
    line order, then per reason with more than rejects.LOGGED rows one line saying
    how many were not logged (line null, detail "not logged: ...")."""
    names = _names(files)
    dups = names.select(pl.col("file_idx").alias("dup_file_idx"), pl.col("file").alias("dup_file"))
    rows = (
        logged.lazy()
        .join(dups.lazy(), on="dup_file_idx", how="left")
        .select(
            "file_idx",
            pl.lit(1).alias("_part"),
            pl.col("line").cast(pl.Int64),
            "reason",
            "detail",
            pl.when(pl.col("dup_file").is_not_null())
            .then(format_text("{}:{}", pl.col("dup_file"), pl.col("dup_line")))
            .alias("duplicate_of"),
        )
    )
    not_logged = (
        counts.lazy()
        .filter(pl.col("n") > rejects.LOGGED)
        .select(
            "file_idx",
            pl.lit(2).alias("_part"),
            pl.lit(None, dtype=pl.Int64).alias("line"),
            "reason",
            format_text(
                "not logged: {} more {} rows of this file ({} in all, the first {} logged)",
                pl.col("n") - rejects.LOGGED, "reason", "n", pl.lit(rejects.LOGGED),
            ).alias("detail"),
            pl.lit(None, dtype=pl.String).alias("duplicate_of"),
        )
    )
    whole = pl.LazyFrame(
        {
            "file_idx": [i for i, f in enumerate(files) if f.rejected],
            "_part": [0 for f in files if f.rejected],
            "line": [None for f in files if f.rejected],
            "reason": [f.rejected for f in files if f.rejected],
            "detail": [f.detail for f in files if f.rejected],
            "duplicate_of": [f.duplicate_of for f in files if f.rejected],
        },
        schema={"file_idx": pl.UInt32, "_part": pl.Int32, "line": pl.Int64, "reason": pl.String,
                "detail": pl.String, "duplicate_of": pl.String},
    )
    return (
        pl.concat([whole, rows, not_logged], how="vertical_relaxed")
        .join(names.lazy(), on="file_idx", how="left")
        .sort("file_idx", "_part", "line", "reason")
        .select("file", "line", "kind", "reason", "detail", "duplicate_of")
        .collect()
    )


def summarize(files: list[SourceFile]) -> pl.DataFrame:
    """Per quarter and kind: files, rows read, accepted, rejected by reason."""
    records = []
    for f in files:
        rec = {
            "quarter": f.quarter,
            "kind": f.kind,
            "files": 1,
            "files_rejected": int(f.rejected is not None),
            "rows": f.rows,
            "accepted": f.accepted,
        }
        rec.update({r: f.rejected_rows.get(r, 0) for r in REASONS})
        records.append(rec)
    schema = {"quarter": pl.Int64, "kind": pl.String, "files": pl.Int64, "files_rejected": pl.Int64,
              "rows": pl.Int64, "accepted": pl.Int64, **{r: pl.Int64 for r in REASONS}}
    df = pl.DataFrame(records, schema=schema)
    return (
        df.group_by("quarter", "kind")
        .agg(pl.exclude("quarter", "kind").sum())
        .sort("quarter", "kind", nulls_last=True)
    )
