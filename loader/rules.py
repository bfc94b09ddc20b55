"""SPEC §2 as a pure function: accepted rows in, every campaign-quarter's selection out.

No Redis, no files, no clock: the only source of randomness is the seed, mixed with
the (quarter, campaign, banner) triple by a fixed integer hash written as polars
expressions, so a seed gives the same selection on every machine and polars version.
"""

from __future__ import annotations

import polars as pl

KEYS = ["quarter", "campaign_id"]
BANNER_KEYS = KEYS + ["banner_id"]

# Revenues are float sums; two banners whose revenues are equal on paper can differ
# in the last bits depending on summation order.  Rounding before ranking makes such
# ties real ties, so the clicks/banner_id tie-breaks decide, as SPEC says.
REVENUE_DECIMALS = 9

SCENARIOS = ("top_revenue_10", "top_revenue_x", "revenue_then_clicks", "top_clicks")

SELECTION_SCHEMA = {
    "quarter": pl.Int64,
    "campaign_id": pl.Int64,
    "scenario": pl.String,
    "x": pl.Int64,
    "rank": pl.Int64,
    "banner_id": pl.Int64,
    "revenue": pl.Float64,
    "clicks": pl.Int64,
    "source": pl.String,
}

_U64 = pl.UInt64
_MASK = (1 << 64) - 1


def _u64(value: int) -> pl.Expr:
    return pl.lit(value & _MASK, dtype=_U64)


def _with_random_key(lf: pl.LazyFrame, seed: int, name: str) -> pl.LazyFrame:
    """Adds a reproducible pseudo-random UInt64 per (seed, quarter, campaign, banner).

    splitmix64's finaliser, one `with_columns` per step: nesting the steps as one
    expression would repeat each step's input twice and grow the tree exponentially.
    """
    lf = lf.with_columns((_u64(seed) + _u64(0x9E3779B97F4A7C15)).alias(name))
    h = pl.col(name)
    for col in BANNER_KEYS:
        lf = lf.with_columns((h ^ pl.col(col).cast(_U64)).alias(name))
        for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, 1)):
            lf = lf.with_columns(((h ^ (h // _u64(1 << shift))) * _u64(mult)).alias(name))
    return lf


def banner_stats(
    impressions: pl.LazyFrame, clicks: pl.LazyFrame, conversions: pl.LazyFrame
) -> pl.LazyFrame:
    """Per (quarter, campaign, banner): clicks, revenue and number of conversions.

    `clicks` and `conversions` must hold accepted rows only (ids unique per quarter,
    every conversion's click present), which is what the loader hands over.
    """
    # Conversions (few) look up their click's banner; clicks (many) are only counted.
    conv_per_banner = (
        conversions.join(clicks.select("quarter", "click_id", "campaign_id", "banner_id"),
                         on=["quarter", "click_id"], how="inner")
        .group_by(BANNER_KEYS)
        .agg(pl.col("revenue").sum().alias("revenue"), pl.len().alias("conversions"))
    )
    per_banner = clicks.group_by(BANNER_KEYS).agg(pl.len().alias("clicks")).join(
        conv_per_banner, on=BANNER_KEYS, how="left"
    )
    # per_banner already holds every clicked banner once: only impressions add others.
    banners = pl.concat(
        [impressions.select(BANNER_KEYS), per_banner.select(BANNER_KEYS)], how="vertical_relaxed"
    ).unique()
    return (
        banners.join(per_banner, on=BANNER_KEYS, how="left")
        .with_columns(
            pl.col("clicks").fill_null(0).cast(pl.Int64),
            pl.col("revenue").fill_null(0.0).cast(pl.Float64).round(REVENUE_DECIMALS),
            pl.col("conversions").fill_null(0).cast(pl.Int64),
        )
    )


def select_banners(
    impressions: pl.LazyFrame | pl.DataFrame,
    clicks: pl.LazyFrame | pl.DataFrame,
    conversions: pl.LazyFrame | pl.DataFrame,
    seed: int,
) -> pl.DataFrame:
    """Every (quarter, campaign)'s selection, one row per selected banner, in order.

    Columns: quarter, campaign_id, scenario, x, rank (0-based), banner_id, revenue,
    clicks, source ("revenue" | "clicks" | "random").

    One ordering covers all four scenarios: banners with conversions by revenue
    (tier 0), then banners with clicks by clicks (tier 1), then the rest in seeded
    random order (tier 2); the scenario only decides how many of the ordered banners
    are taken.
    """
    stats = banner_stats(impressions.lazy(), clicks.lazy(), conversions.lazy())
    has_conv = pl.col("conversions") > 0
    x = has_conv.sum().over(KEYS).cast(pl.Int64)
    tier = pl.when(has_conv).then(0).when(pl.col("clicks") > 0).then(1).otherwise(2)
    ranked = (
        _with_random_key(
            stats.with_columns(x=x, tier=tier, n=pl.len().over(KEYS).cast(pl.Int64)),
            seed,
            "rand",
        )
        # Only tier 2 is ordered by chance; elsewhere the SPEC's tie-breaks decide.
        .with_columns(rand=pl.when(pl.col("tier") == 2).then("rand").otherwise(_u64(0)))
        .sort(
            ["quarter", "campaign_id", "tier", "revenue", "clicks", "rand", "banner_id"],
            descending=[False, False, False, True, True, False, False],
        )
        .with_columns(rank=pl.int_range(pl.len()).over(KEYS).cast(pl.Int64))
    )
    limit = (
        pl.when(pl.col("x") >= 10)
        .then(10)
        .when(pl.col("x") >= 5)
        .then(pl.col("x"))
        .otherwise(pl.min_horizontal(pl.lit(5), pl.col("n")))
    )
    scenario = (
        pl.when(pl.col("x") >= 10)
        .then(pl.lit(SCENARIOS[0]))
        .when(pl.col("x") >= 5)
        .then(pl.lit(SCENARIOS[1]))
        .when(pl.col("x") >= 1)
        .then(pl.lit(SCENARIOS[2]))
        .otherwise(pl.lit(SCENARIOS[3]))
    )
    source = (
        pl.when(pl.col("tier") == 0)
        .then(pl.lit("revenue"))
        .when(pl.col("tier") == 1)
        .then(pl.lit("clicks"))
        .otherwise(pl.lit("random"))
    )
    return (
        ranked.filter(pl.col("rank") < limit)
        .with_columns(scenario=scenario, source=source)
        .select(
            [pl.col(name).cast(dtype) for name, dtype in SELECTION_SCHEMA.items()]
        )
        .sort("quarter", "campaign_id", "rank")
        .collect()
    )


def selections_to_records(selections: pl.DataFrame) -> list[dict]:
    """The `banners show --json` shape: one object per quarter and campaign."""
    grouped = (
        selections.sort("quarter", "campaign_id", "rank")
        .group_by("quarter", "campaign_id", maintain_order=True)
        .agg(
            pl.col("scenario").first(),
            pl.col("x").first(),
            pl.struct("banner_id", "revenue", "clicks", "source").alias("banners"),
        )
    )
    return grouped.to_dicts()
