"""campaigns.csv: a campaign's name and landing page (SPEC §7).

`campaign_id,name,landing_url`, in any folder (a quarter folder or none).  Rows are
checked like the data's: an id 0..2^63-1, a landing page that is an absolute http://
or https:// URL (anything else could send a click to a `javascript:` URL or nowhere),
a name of at most 200 characters; a bad row is rejected as `invalid` with its line.
The last valid row per campaign wins, in the files' sorted order.

These files are a few rows per campaign, not data: the csv module reads them, so a
name may hold quoted commas, and its loop runs over campaigns, never over traffic.
"""

from __future__ import annotations

import csv
import io
from urllib.parse import urlsplit

import polars as pl

from . import rejects
from banner_server.ids import MAX_ID, parse_id

from .files import SourceFile

MAX_NAME = 200
SCHEMA = {"campaign_id": pl.Int64, "name": pl.String, "landing_url": pl.String,
          "file_idx": pl.UInt32, "line": pl.UInt32}


def _problem(row: list[str]) -> str | None:
    if len(row) != 3:
        return f"expected 3 fields, got {len(row)}"
    campaign, name, url = (v.strip() for v in row)
    if parse_id(campaign) is None:
        return f"campaign_id is not an integer from 0 to {MAX_ID}: {campaign[:40]!r}"
    if len(name) > MAX_NAME or any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in name):
        return f"name is longer than {MAX_NAME} characters or holds control characters"
    if url:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
            return f"landing_url is not an http:// or https:// URL: {url[:60]!r}"
    return None


def parse_campaigns(src: SourceFile, body: bytes, file_idx: int) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(valid rows, the logged invalid rows, how many were invalid) of one file's body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        src.rejected, src.detail = "invalid", f"not UTF-8 text (byte {exc.start} after the header)"
        return pl.DataFrame(schema=SCHEMA), rejects.empty(), 0
    order = [src.header.index(c) for c in ("campaign_id", "name", "landing_url")]
    good, bad = [], []
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows += 1
            bad.append((reader.line_num + 1, f"not a CSV line: {exc}"))
            continue
        line = reader.line_num + 1  # the header is line 1
        if not any(v.strip() for v in row):
            continue
        rows += 1
        if len(row) == 3:
            row = [row[i] for i in order]  # the header's column order is free
        problem = _problem(row)
        if problem:
            bad.append((line, problem))
            continue
        campaign, name, url = (v.strip() for v in row)
        good.append((int(campaign), name or None, url or None, file_idx, line))
    src.rows = rows
    valid = pl.DataFrame(good, schema=SCHEMA, orient="row")
    logged = pl.DataFrame(
        {"file_idx": [file_idx] * len(bad[:rejects.LOGGED]), "line": [b[0] for b in bad[:rejects.LOGGED]],
         "reason": ["invalid"] * len(bad[:rejects.LOGGED]), "detail": [b[1] for b in bad[:rejects.LOGGED]],
         "dup_file_idx": [None] * len(bad[:rejects.LOGGED]), "dup_line": [None] * len(bad[:rejects.LOGGED])},
        schema=rejects.SCHEMA)
    return valid, logged, len(bad)


def latest(rows: pl.DataFrame) -> pl.DataFrame:
    """The last valid row per campaign (files in sorted order, then lines)."""
    return (rows.lazy().sort("file_idx", "line").group_by("campaign_id").last()
            .select("campaign_id", "name", "landing_url").sort("campaign_id").collect())
