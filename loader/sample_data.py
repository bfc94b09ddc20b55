"""`banners sample-data`: a realistic data set in the real one's layout.

Like ../shared/datachef: campaigns 1-50, banners 100-500, per quarter about 150,000
impressions, 30-60,000 clicks and 3-6,000 conversions (times --scale).  Campaigns are
spread over all four scenarios (and a few with fewer than 5 banners), some revenues
come from a coarse grid so ties happen, and quarter 2 gets a handful of duplicate
rows so the reject log has something to show.  Rows are drawn with polars' seeded
sampling, never row by row in Python.
"""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl

CAMPAIGNS = range(1, 51)
BANNERS = range(100, 501)
IMPRESSIONS, CLICKS, CONVERSIONS = 150_000, (30_000, 60_000), (3_000, 6_000)  # per quarter, times scale

# (scenario, number of banners with conversions, banners with clicks only) by slot;
# the slot of a campaign turns with the quarter so each quarter differs.
_PLANS = (
    [("top_revenue_10", (10, 60), (50, 300))] * 30
    + [("top_revenue_x", (5, 9), (20, 100))] * 6
    + [("revenue_then_clicks", (1, 4), (0, 6))] * 6
    + [("top_clicks", (0, 0), (0, 12))] * 6
    + [("tiny", (0, 1), (1, 2))] * 2
)


def _plan(rng: random.Random, quarter: int) -> pl.DataFrame:
    """(campaign_id, banner_id, role, tie) pairs for one quarter; role: conv|click|view."""
    rows: dict[str, list] = {"campaign_id": [], "banner_id": [], "role": [], "tie": []}
    for campaign in CAMPAIGNS:
        name, (xlo, xhi), (clo, chi) = _PLANS[(campaign + 7 * quarter) % len(_PLANS)]
        x = rng.randint(xlo, xhi)
        clicked = rng.randint(clo, chi)
        views = 1 if name == "tiny" else rng.randint(5, 60)
        pool = rng.sample(BANNERS, x + clicked + views)
        tie = rng.random() < 0.3
        for role, ids in (("conv", pool[:x]), ("click", pool[x:x + clicked]), ("view", pool[x + clicked:])):
            rows["campaign_id"] += [campaign] * len(ids)
            rows["banner_id"] += ids
            rows["role"] += [role] * len(ids)
            rows["tie"] += [tie] * len(ids)
    return pl.DataFrame(rows, schema={"campaign_id": pl.Int64, "banner_id": pl.Int64, "role": pl.String, "tie": pl.Boolean})


def make_quarter(quarter: int, seed: int, scale: float) -> dict[str, pl.DataFrame]:
    rng = random.Random(seed * 10 + quarter)
    plan = _plan(rng, quarter)
    n_imp = max(int(IMPRESSIONS * scale), plan.height)
    n_clk = max(int(rng.randint(*CLICKS) * scale), 1)
    n_conv = max(int(rng.randint(*CONVERSIONS) * scale), 1)
    s = seed * 100 + quarter

    # Every planned banner gets one impression; the rest are drawn at random.
    impressions = pl.concat(
        [plan, plan.sample(n_imp - plan.height, with_replacement=True, seed=s)]
    ).sample(fraction=1.0, shuffle=True, seed=s + 1).select("banner_id", "campaign_id")

    clickable = plan.filter(pl.col("role") != "view")
    clicks = (
        pl.concat([clickable, clickable.sample(max(n_clk - clickable.height, 0), with_replacement=True, seed=s + 2)])
        .sample(fraction=1.0, shuffle=True, seed=s + 3)
        .with_row_index("click_id", offset=quarter * 1_000_000)
        .with_columns(pl.col("click_id").cast(pl.Int64))
    )
    converting = clicks.filter(pl.col("role") == "conv")
    # At least one conversion per converting banner, so X is what the plan says.
    firsts = converting.unique(["banner_id", "campaign_id"], keep="first", maintain_order=True)
    more = converting.sample(max(n_conv - firsts.height, 0), with_replacement=True, seed=s + 4)
    grid = pl.Series([0.25 * k for k in range(1, 9)])
    fine = pl.int_range(1, 3_000_001, eager=True).sample(firsts.height + more.height, with_replacement=True, seed=s + 5) / 1e6
    coarse = grid.sample(firsts.height + more.height, with_replacement=True, seed=s + 6)
    conversions = (
        pl.concat([firsts, more])
        .with_columns(fine=fine, coarse=coarse)
        .with_columns(revenue=pl.when("tie").then("coarse").otherwise("fine"))
        .sample(fraction=1.0, shuffle=True, seed=s + 7)
        .with_row_index("conversion_id", offset=quarter * 100_000)
        .select(pl.col("conversion_id").cast(pl.Int64), "click_id", "revenue")
    )
    clicks = clicks.select("click_id", "banner_id", "campaign_id")
    if quarter == 2:
        clicks, conversions = _with_a_few_duplicates(clicks, conversions)
    return {"impressions": impressions, "clicks": clicks, "conversions": conversions}


def _with_a_few_duplicates(clicks: pl.DataFrame, conversions: pl.DataFrame):
    """Repeats some rows as a real export would after a retried upload."""
    repeated = clicks.head(3)
    conflict = clicks.slice(3, 1).with_columns(pl.col("banner_id") + 1)
    clicks = pl.concat([clicks, repeated, conflict])
    conversions = pl.concat([conversions, conversions.head(2)])
    return clicks, conversions


def write_sample(out_dir: Path, seed: int = 1, scale: float = 1.0) -> list[Path]:
    written = []
    for quarter in range(1, 5):
        folder = out_dir / str(quarter)
        folder.mkdir(parents=True, exist_ok=True)
        for kind, df in make_quarter(quarter, seed, scale).items():
            path = folder / f"{kind}_{quarter}.csv"
            df.write_csv(path, float_precision=6)
            written.append(path)
    # Names and landing pages (SPEC §7) for campaigns 1-50, so click-through works out
    # of the box; example.com is reserved for examples (RFC 2606).
    path = out_dir / "campaigns.csv"
    (pl.DataFrame({"campaign_id": range(1, 51)})
     .with_columns(name=pl.format("Campaign {}", "campaign_id"),
                   landing_url=pl.format("https://example.com/campaign/{}", "campaign_id"))
     .write_csv(path))
    written.append(path)
    return written
