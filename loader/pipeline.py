"""`banners load` without the Redis part: folder in, selections + rejects + summary out."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl

from .dedupe import accept_rows
from .files import KINDS, SourceFile, classify, find_csv_files, read_and_hash
from .rules import select_banners
from .validate import REJECT_SCHEMA, parse_rows, typed_schema

REASONS = ("duplicate_row", "conflict", "orphan", "invalid")


@dataclass
class LoadResult:
    files: list[SourceFile]
    selections: pl.DataFrame
    rejects: pl.DataFrame  # file, line, kind, reason, detail, duplicate_of
    summary: pl.DataFrame  # quarter, kind, files, rows, accepted, one column per reason
    accepted_rows: int

    @property
    def invalid(self) -> int:
        """Rejections that are bad input (SPEC exit code 3), not mere duplicates."""
        return self.rejects.filter(pl.col("reason") == "invalid").height

    @property
    def quarters(self) -> list[int]:
        return sorted(set(self.selections["quarter"].to_list()))


def _read(src: SourceFile) -> tuple[bytes, str] | None:
    return None if src.rejected else read_and_hash(src)


def read_folder(
    data_dir: Path, progress: Callable[[int], None] | None = None
) -> tuple[list[SourceFile], dict[str, pl.DataFrame], pl.DataFrame]:
    """Reads and validates every file; returns (files, valid rows by kind, invalid rows)."""
    files = find_csv_files(data_dir)
    seen: dict[str, SourceFile] = {}
    parts: dict[str, list[pl.DataFrame]] = {kind: [] for kind in KINDS}
    invalid: list[pl.DataFrame] = []
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
            if read is None:
                continue  # rejected when found (a folder that cannot be read)
            data, sha256 = read
            body = classify(src, data, sha256, seen)
            del data
            if body is not None:
                valid, bad = parse_rows(src, body, idx)
                if src.kind == "impressions":
                    # The rules only ask which banners a campaign has: one row per
                    # distinct banner keeps memory to the banners, not the impressions.
                    valid = valid.lazy().unique().collect()  # (eager unique: 3x slower here)
                parts[src.kind].append(valid)
                invalid.append(bad)
            if progress:
                progress(src.size)
    frames = {
        kind: pl.concat(dfs, rechunk=False) if dfs else pl.DataFrame(schema=typed_schema(kind))
        for kind, dfs in parts.items()
    }
    bad_rows = pl.concat(invalid) if invalid else pl.DataFrame(schema=REJECT_SCHEMA)
    return files, frames, bad_rows


def _file_table(files: list[SourceFile]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "file_idx": range(len(files)),
            "file": [f.rel for f in files],
            "quarter": [f.quarter for f in files],
            "kind": [f.kind for f in files],
            "rows": [f.rows for f in files],
            "usable": [f.rejected is None for f in files],
        },
        schema={
            "file_idx": pl.UInt32,
            "file": pl.String,
            "quarter": pl.Int64,
            "kind": pl.String,
            "rows": pl.Int64,
            "usable": pl.Boolean,
        },
    )


def compute(
    data_dir: Path, seed: int, progress: Callable[[int], None] | None = None
) -> LoadResult:
    files, frames, invalid = read_folder(data_dir, progress)
    clicks, conversions, dup_rejects = accept_rows(frames["clicks"], frames["conversions"])
    selections = select_banners(frames["impressions"], clicks, conversions, seed)

    table = _file_table(files)
    row_rejects = pl.concat([invalid, dup_rejects], how="vertical_relaxed")
    per_file = row_rejects.group_by("file_idx", "reason").len()
    for f in files:
        f.rejected_rows = {}
    for file_idx, reason, n in per_file.iter_rows():
        files[file_idx].rejected_rows[reason] = n
    for f in files:
        f.accepted = f.rows - sum(f.rejected_rows.values())
    accepted_rows = sum(f.accepted for f in files if f.rejected is None)

    names = table.select("file_idx", "file", "kind")
    dups = names.select(pl.col("file_idx").alias("dup_file_idx"), pl.col("file").alias("dup_file"))
    rejects_rows = (
        row_rejects.join(names, on="file_idx", how="left")
        .join(dups, on="dup_file_idx", how="left")
        .select(
            "file_idx",
            "file",
            pl.col("line").cast(pl.Int64),
            "kind",
            "reason",
            "detail",
            pl.when(pl.col("dup_file").is_not_null())
            .then(pl.format("{}:{}", pl.col("dup_file"), pl.col("dup_line")))
            .alias("duplicate_of"),
        )
    )
    whole = pl.DataFrame(
        {
            "file_idx": [i for i, f in enumerate(files) if f.rejected],
            "file": [f.rel for f in files if f.rejected],
            "line": [None for f in files if f.rejected],
            "kind": [f.kind for f in files if f.rejected],
            "reason": [f.rejected for f in files if f.rejected],
            "detail": [f.detail for f in files if f.rejected],
            "duplicate_of": [f.duplicate_of for f in files if f.rejected],
        },
        schema=rejects_rows.schema,
    )
    rejects = (
        pl.concat([whole, rejects_rows])
        .sort("file_idx", "line", nulls_last=False)
        .drop("file_idx")
    )
    return LoadResult(files, selections, rejects, summarize(files), accepted_rows)


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
