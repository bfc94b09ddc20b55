"""The real data set, when ../shared/datachef is there (skipped otherwise)."""

import polars as pl

from loader.pipeline import compute


def test_real_set_every_campaign_quarter_is_top_revenue_10(datachef):
    res = compute(datachef / "csv", seed=1)
    per = res.selections.group_by("quarter", "campaign_id").agg(pl.col("scenario").first(), pl.len())
    assert per.height == 4 * 50
    assert set(per["scenario"]) == {"top_revenue_10"} and set(per["len"]) == {10}
    assert res.rejects.height == 0 and res.accepted_rows == 796_001
