"""Row-level acceptance across files of a quarter (SPEC §4): first occurrence wins.

Input frames hold the valid rows of every file, concatenated in the files' sorted
order, so row order is (file, line) order and "first" means first read.
"""

from __future__ import annotations

import polars as pl

from .validate import REJECT_SCHEMA


def _first_wins(rows: pl.DataFrame, id_col: str, content: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    first = pl.col(id_col).is_first_distinct().over("quarter")
    flagged = rows.with_columns(_first=first)
    accepted = flagged.filter("_first").drop("_first")
    later = flagged.filter(~pl.col("_first")).drop("_first")
    if later.is_empty():
        return accepted, pl.DataFrame(schema=REJECT_SCHEMA)
    originals = accepted.select(
        "quarter",
        id_col,
        *[pl.col(c).alias(f"_orig_{c}") for c in content],
        pl.col("file_idx").alias("dup_file_idx"),
        pl.col("line").alias("dup_line"),
    )
    same = pl.all_horizontal([pl.col(c) == pl.col(f"_orig_{c}") for c in content])
    rejects = later.join(originals, on=["quarter", id_col], how="left").select(
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
    known = clicks_ok.select("quarter", "click_id")
    linked = conversions.join(known, on=["quarter", "click_id"], how="semi", maintain_order="left")
    orphans = conversions.join(known, on=["quarter", "click_id"], how="anti").select(
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
