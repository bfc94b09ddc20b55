"""`banners export`: an hour of recorded events as the input files `banners load` reads.

`hour_files` is pure: the events in, the bytes of every file out, so the same hour
exported twice gives the same bytes.  Per quarter (folder `1`..`4`):

    impressions_<hour>.csv   banner_id,campaign_id      one row per impression
    clicks_<hour>.csv        click_id,banner_id,campaign_id
    conversions_<hour>.csv   conversion_id,click_id,revenue

Rows are sorted (impressions by campaign, banner; clicks and conversions by id).  A
quarter with no event of a kind gets no file of it: header-only files of two hours
would be byte-identical, which the loader rejects as `duplicate_file` (noise).
`write_files` puts them in place atomically (a temporary file, flushed, renamed).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import polars as pl

HEADERS = {
    "impressions": ("banner_id", "campaign_id"),
    "clicks": ("click_id", "banner_id", "campaign_id"),
    "conversions": ("conversion_id", "click_id", "revenue"),
}


def _csv(frame: pl.DataFrame) -> bytes:
    return frame.write_csv(line_terminator="\n").encode()


def hour_files(hour: str, impressions: dict[int, list[tuple[int, int, int]]],
               clicks: dict[int, list[tuple[int, int, int]]],
               conversions: dict[int, list[tuple[int, int, str]]]) -> dict[str, bytes]:
    """Relative path (`1/clicks_2026-11-28T23.csv`) -> CSV bytes, for an hour's events
    per quarter: impressions (campaign, banner, count), clicks (click_id, banner,
    campaign), conversions (conversion_id, click_id, revenue as decimal text)."""
    out: dict[str, bytes] = {}
    for quarter in sorted(set(impressions) | set(clicks) | set(conversions)):
        imps = pl.DataFrame(impressions.get(quarter, []), orient="row",
                            schema={"campaign_id": pl.Int64, "banner_id": pl.Int64, "n": pl.Int64})
        if imps.height:
            rows = (imps.lazy()
                    .group_by("campaign_id", "banner_id").agg(pl.col("n").sum())
                    .filter(pl.col("n") > 0)
                    .sort("campaign_id", "banner_id")
                    # one row per impression: each counter repeated its count times
                    .select(pl.col("banner_id").repeat_by("n").explode(),
                            pl.col("campaign_id").repeat_by("n").explode())
                    .collect())
            if rows.height:
                out[f"{quarter}/impressions_{hour}.csv"] = _csv(rows)
        cl = pl.DataFrame(clicks.get(quarter, []), orient="row",
                          schema={"click_id": pl.Int64, "banner_id": pl.Int64, "campaign_id": pl.Int64})
        if cl.height:
            out[f"{quarter}/clicks_{hour}.csv"] = _csv(cl.sort("click_id"))
        conv = pl.DataFrame(conversions.get(quarter, []), orient="row",
                            schema={"conversion_id": pl.Int64, "click_id": pl.Int64, "revenue": pl.String})
        if conv.height:
            out[f"{quarter}/conversions_{hour}.csv"] = _csv(conv.sort("conversion_id"))
    return out


def write_files(out_dir: Path, files: dict[str, bytes]) -> list[Path]:
    """Writes each file under out_dir through a temporary file renamed into place: a
    reader (a load of the folder) sees the old file or the new one, never half of it."""
    written = []
    for rel, data in sorted(files.items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not *.csv: a load running meanwhile does not pick it up.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(path)
    return written
