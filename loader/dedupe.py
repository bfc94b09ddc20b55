"""Row-level acceptance across files of a quarter (SPEC §4): first occurrence wins.

Input frames hold the valid rows of every file, concatenated in the files' sorted
order, so row order is (file, line) order and "first" means first read.
"""

from __future__ import annotations

import polars as pl

from . import rejects
from .validate import format_text


def quarter_key(id_col: str) -> pl.Expr:
    """(quarter, id) as one integer: ids are checked < 2^60 before this is used, and
    hashing one Int64 column is several times cheaper than a struct or a window."""
    return pl.col(id_col) * 4 + (pl.col("quarter") - 1)


def _small_ids(rows: pl.DataFrame, id_col: str) -> bool:
    return rows.is_empty() or (rows[id_col].max() or 0) < 2**60


def _key(id_col: str, *frames: pl.DataFrame) -> pl.Expr:
    """(quarter, id) as one value for every row of `frames`: quarter_key when all their
    ids allow it, else a struct."""
    if all(_small_ids(f, id_col) for f in frames):
        return quarter_key(id_col)
    return pl.struct("quarter", id_col)


def _first_wins(
    rows: pl.DataFrame, id_col: str, content: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(accepted rows, logged rejects, reject counts) of one kind."""
    key = rows.select(_key(id_col, rows).alias("_k")).to_series()
    if key.n_unique() == rows.height:
        return rows, rejects.empty(), rejects.empty_counts()  # the usual case: no repeated id
    # Find the repeated keys first (a sort is several times cheaper than a group-by
    # here), then order only their rows, by key and, within a key, by row number
    # (a stable sort of rows in file order): the first of each run is the original.
    ordered = key.sort()
    repeated = ordered.filter(ordered == ordered.shift(1)).unique()
    later = (
        key.to_frame()
        .with_row_index("_i")
        .filter(pl.col("_k").is_in(repeated.implode()))
        .sort("_k", maintain_order=True)
        .with_columns(_first=pl.col("_k").ne_missing(pl.col("_k").shift(1)))
        .with_columns(_orig=pl.when("_first").then("_i").forward_fill())
        .filter(~pl.col("_first"))
        .sort("_i")  # back to (file, line) order
    )
    accepted = rows.filter(pl.repeat(True, rows.height, eager=True).scatter(later["_i"], False))
    originals = rows[later["_orig"]].select(
        *[pl.col(c).alias(f"_orig_{c}") for c in content],
        pl.col("file_idx").alias("dup_file_idx"),
        pl.col("line").alias("dup_line"),
    )
    same = pl.all_horizontal([pl.col(c) == pl.col(f"_orig_{c}") for c in content])
    judged = (
        rows[later["_i"]]
        .hstack(originals)
        .lazy()
        .select(
            "file_idx",
            "line",
            pl.when(same).then(pl.lit("duplicate_row")).otherwise(pl.lit("conflict")).alias("reason"),
            id_col,
            "dup_file_idx",
            "dup_line",
        )
    )
    logged = rejects.first_logged(judged).select(
        "file_idx",
        "line",
        "reason",
        pl.when(pl.col("reason") == "duplicate_row")
        .then(format_text(f"{id_col} {{}} already accepted", pl.col(id_col)))
        .otherwise(format_text(f"{id_col} {{}} already accepted with other values", pl.col(id_col)))
        .alias("detail"),
        "dup_file_idx",
        "dup_line",
    )
    counted, logged = pl.collect_all([rejects.counts(judged), logged])
    return accepted, logged, counted


def accept_rows(
    clicks: pl.DataFrame, conversions: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(accepted clicks, accepted conversions, logged rejects, reject counts) for every
    quarter at once (see loader.rejects for what is logged).

    A conversion must point at an accepted click of its own quarter; only then does
    its id count as accepted, so an orphan never shadows a later good row.
    """
    clicks_ok, click_logged, click_counts = _first_wins(clicks, "click_id", ["banner_id", "campaign_id"])
    key = _key("click_id", clicks_ok, conversions)
    known = clicks_ok.select(key)
    flagged = conversions.with_columns(_linked=key.is_in(known.to_series().implode()))
    linked = flagged.filter("_linked").drop("_linked")
    orphans = flagged.lazy().filter(~pl.col("_linked")).with_columns(reason=pl.lit("orphan"))
    orphan_logged = rejects.first_logged(orphans).select(
        "file_idx",
        "line",
        "reason",
        format_text(
            "click_id {} is not an accepted click of quarter {}", pl.col("click_id"), pl.col("quarter")
        ).alias("detail"),
        pl.lit(None, dtype=pl.UInt32).alias("dup_file_idx"),
        pl.lit(None, dtype=pl.UInt32).alias("dup_line"),
    )
    orphan_counts, orphan_logged = pl.collect_all([rejects.counts(orphans), orphan_logged])
    conv_ok, conv_logged, conv_counts = _first_wins(linked, "conversion_id", ["click_id", "revenue"])
    logged = pl.concat([click_logged, orphan_logged, conv_logged], how="vertical_relaxed")
    counts = pl.concat([click_counts, orphan_counts, conv_counts], how="vertical_relaxed")
    return clicks_ok, conv_ok, logged, counts
