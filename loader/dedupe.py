"""Row-level acceptance across files of a quarter (SPEC §4): first occurrence wins.

Input frames hold the valid rows of every file, concatenated in the files' sorted
order, so row order is (file, line) order and "first" means first read.
"""

from __future__ import annotations

import polars as pl

from .validate import REJECT_SCHEMA


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


def _first_wins(rows: pl.DataFrame, id_col: str, content: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    keyed = rows.with_columns(_key(id_col, rows).alias("_k"))
    if keyed["_k"].n_unique() == rows.height:
        return rows, pl.DataFrame(schema=REJECT_SCHEMA)  # the usual case: no repeated id
    # Repeated ids are rare: find them first (a sort is several times cheaper than a
    # group-by here), then order only their rows.
    ordered = keyed["_k"].sort()
    repeated = ordered.filter(ordered == ordered.shift(1)).unique()
    suspects = keyed.with_row_index("_i").filter(pl.col("_k").is_in(repeated.implode()))
    suspects = suspects.with_columns(_first=pl.col("_k").is_first_distinct())
    later = suspects.filter(~pl.col("_first"))
    accepted = rows.with_row_index("_i").filter(~pl.col("_i").is_in(later["_i"].implode())).drop("_i")
    originals = suspects.filter("_first").select(
        "_k",
        *[pl.col(c).alias(f"_orig_{c}") for c in content],
        pl.col("file_idx").alias("dup_file_idx"),
        pl.col("line").alias("dup_line"),
    )
    same = pl.all_horizontal([pl.col(c) == pl.col(f"_orig_{c}") for c in content])
    rejects = later.join(originals, on="_k", how="left").select(
        "file_idx",
        "line",
        pl.when(same).then(pl.lit("duplicate_row")).otherwise(pl.lit("conflict")).alias("reason"),
        pl.when(same)
        .then(pl.format(f"{id_col} {{}} already accepted", pl.col(id_col)))
        .otherwise(
            pl.format(f"{id_col} {{}} already accepted with other values", pl.col(id_col))
        )
        .alias("detail"),
        "dup_file_idx",
        "dup_line",
    )
    return accepted, rejects


def accept_rows(
    clicks: pl.DataFrame, conversions: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(accepted clicks, accepted conversions, rejects) for every quarter at once.

    A conversion must point at an accepted click of its own quarter; only then does
    its id count as accepted, so an orphan never shadows a later good row.
    """
    clicks_ok, click_rejects = _first_wins(clicks, "click_id", ["banner_id", "campaign_id"])
    key = _key("click_id", clicks_ok, conversions)
    known = clicks_ok.select(key)
    flagged = conversions.with_columns(_linked=key.is_in(known.to_series().implode()))
    linked = flagged.filter("_linked").drop("_linked")
    orphans = flagged.filter(~pl.col("_linked")).select(
        "file_idx",
        "line",
        pl.lit("orphan").alias("reason"),
        pl.format(
            "click_id {} is not an accepted click of quarter {}", pl.col("click_id"), pl.col("quarter")
        ).alias("detail"),
        pl.lit(None, dtype=pl.UInt32).alias("dup_file_idx"),
        pl.lit(None, dtype=pl.UInt32).alias("dup_line"),
    )
    conv_ok, conv_rejects = _first_wins(linked, "conversion_id", ["click_id", "revenue"])
    rejects = pl.concat([click_rejects, orphans, conv_rejects], how="vertical_relaxed")
    return clicks_ok, conv_ok, rejects
