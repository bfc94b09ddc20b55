"""A catalog of any size in the input layout: N campaigns x B banners x 4 quarters.

    python bench/big_catalog.py /tmp/big --campaigns 100000 --banners 10
    python bench/big_catalog.py /tmp/huge-names --campaigns 1000 --campaign-rows 1500000

Not the sample's realism (bench only): every banner of every campaign gets one
impression and one click; campaign c's first k banners one conversion each, k turning
over 10, 7, 2, 0 with c + quarter, so the four scenarios are all present in equal parts.
Banner ids are c * B + i (distinct per campaign).  campaigns.csv names
max(campaigns, --campaign-rows) campaigns, each "Campaign <id>" with a landing page on
example.com.  Columnar (polars), never row by row: 100k x 10 x 4 writes in ~10 s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

CONVERTING = (10, 7, 2, 0)  # banners with a conversion, by (campaign + quarter) % 4


def quarter_frames(quarter: int, campaigns: int, banners: int) -> dict[str, pl.DataFrame]:
    pairs = (pl.DataFrame({"campaign_id": pl.int_range(1, campaigns + 1, eager=True, dtype=pl.Int64)})
             .join(pl.DataFrame({"i": pl.int_range(0, banners, eager=True, dtype=pl.Int64)}), how="cross")
             .with_columns(banner_id=pl.col("campaign_id") * banners + pl.col("i")))
    # Shuffled per quarter: the same rows in the same order would be one file for the
    # loader's duplicate-file check.
    impressions = pairs.select("banner_id", "campaign_id").sample(fraction=1.0, shuffle=True, seed=quarter)
    clicks = (pairs.with_row_index("click_id", offset=quarter * 100_000_000)
              .with_columns(pl.col("click_id").cast(pl.Int64)))
    k = pl.Series(CONVERTING).gather((clicks["campaign_id"] + quarter) % 4)
    converting = clicks.with_columns(k=k).filter(pl.col("i") < pl.col("k"))
    conversions = (converting.with_row_index("conversion_id", offset=quarter * 100_000_000)
                   .select(pl.col("conversion_id").cast(pl.Int64), "click_id",
                           revenue=((pl.col("banner_id") * 7919) % 100_000 + 1) / 1000))
    return {"impressions": impressions, "clicks": clicks.select("click_id", "banner_id", "campaign_id"),
            "conversions": conversions}


def write(out: Path, campaigns: int, banners: int, campaign_rows: int) -> None:
    for quarter in range(1, 5):
        folder = out / str(quarter)
        folder.mkdir(parents=True, exist_ok=True)
        for kind, df in quarter_frames(quarter, campaigns, banners).items():
            df.write_csv(folder / f"{kind}_{quarter}.csv")
    (pl.DataFrame({"campaign_id": pl.int_range(1, max(campaigns, campaign_rows) + 1, eager=True)})
     .with_columns(name=pl.format("Campaign {}", "campaign_id"),
                   landing_url=pl.format("https://example.com/campaign/{}", "campaign_id"))
     .write_csv(out / "campaigns.csv"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--campaigns", type=int, default=100_000)
    parser.add_argument("--banners", type=int, default=10)
    parser.add_argument("--campaign-rows", type=int, default=0, help="rows of campaigns.csv (default: --campaigns)")
    args = parser.parse_args()
    start = time.perf_counter()
    write(args.out, args.campaigns, args.banners, args.campaign_rows)
    size = sum(p.stat().st_size for p in args.out.rglob("*.csv"))
    print(f"wrote {args.out}: {size / 1e6:.0f} MB of CSV in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
