"""campaigns.csv: a campaign's name and landing page (SPEC §7), and its frequency cap.

`campaign_id,name,landing_url`, in any folder (a quarter folder or none), with
optionally `cap_impressions,cap_window`: at most that many banners of the campaign per
visitor per window (seconds, or `90m`, `1h`, `1d`; both or neither; empty: the
default, BANNERS_FREQUENCY_CAP).  Rows are
checked like the data's: an id 0..2^63-1, a landing page that is an absolute http://
or https:// URL (anything else could send a click to a `javascript:` URL or nowhere),
a name of at most 200 characters; a bad row is rejected as `invalid` with its line.
The last valid row per campaign wins, in the files' sorted order.

The csv module reads them (a name may hold quoted commas and newlines), from the
bytes as they come and BATCH rows at a time into polars frames: a company master
list of 1.5 M rows (163 MB) costs about its valid rows, not a decoded copy of the
file plus a Python tuple per row (1.79 GB before).  Only the campaigns the loaded
data has are kept in the end (pipeline.compute).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from urllib.parse import urlsplit

import polars as pl

from . import rejects
from banner_server.checks import cap_window
from banner_server.ids import MAX_ID, parse_id

from .files import SourceFile
from .validate import _utf8_error

MAX_NAME = 200
# A landing URL goes out as a Location header: proxies answer 502 to one of 70 KB, and
# browsers and servers take about 2,000 characters everywhere.
MAX_URL = 2048
BATCH = 1 << 16  # rows turned into a polars frame at a time
SCHEMA = {"campaign_id": pl.Int64, "name": pl.String, "landing_url": pl.String,
          "cap_impressions": pl.Int64, "cap_window": pl.Int64, "file_idx": pl.UInt32, "line": pl.UInt32}
COLUMNS = ("campaign_id", "name", "landing_url", "cap_impressions", "cap_window")
MAX_CAP = 10**9


def _cap(row: list[str]) -> tuple[int | None, int | None] | str:
    """(impressions, window seconds) of a row's cap columns, (None, None) when empty;
    the problem's text when they are wrong."""
    count, window = (row[3].strip(), row[4].strip()) if len(row) == 5 else ("", "")
    if not count and not window:
        return None, None
    if not count or not window:
        return "cap_impressions and cap_window go together: give both or neither"
    if not count.isascii() or not count.isdigit() or not 1 <= int(count) <= MAX_CAP:
        return f"cap_impressions is not a whole number from 1 to {MAX_CAP}: {count[:20]!r}"
    try:
        return int(count), cap_window(window)
    except ValueError as exc:
        return f"cap_window {exc}"


def _problem(row: list[str], fields: int = 3) -> str | None:
    if len(row) != fields:
        return f"expected {fields} fields, got {len(row)}"
    campaign, name, url = (v.strip() for v in row[:3])
    if parse_id(campaign) is None:
        return f"campaign_id is not an integer from 0 to {MAX_ID}: {campaign[:40]!r}"
    # Format characters (Unicode Cf: bidi overrides, zero-width ones) hide or reorder
    # what a dashboard shows, as control characters do.
    if len(name) > MAX_NAME or any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or unicodedata.category(c) == "Cf"
                                   for c in name):
        return f"name is longer than {MAX_NAME} characters or holds control or format characters"
    if url:
        if len(url) > MAX_URL:
            return f"landing_url is longer than {MAX_URL} characters ({len(url)})"
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            return f"landing_url is not an http:// or https:// URL: {url[:60]!r}"
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
            return f"landing_url is not an http:// or https:// URL: {url[:60]!r}"
        if "@" in parts.netloc:
            # https://good.example@evil.example/ goes to evil.example
            return f"landing_url holds a user name or password (user@host): {url[:60]!r}"
    return None


def parse_campaigns(src: SourceFile, body: bytes, file_idx: int) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(valid rows, the logged invalid rows, how many were invalid) of one file's body."""
    fields = len(src.header)  # 3, or 5 with the cap columns
    order = [src.header.index(c) for c in COLUMNS[:fields]]
    good: list[tuple] = []
    frames: list[pl.DataFrame] = []
    bad: list[tuple[int, str]] = []
    n_bad = 0
    # Decoded as read (BytesIO shares the body's bytes): no copy of the whole text.
    text = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8", newline="")
    reader = csv.reader(text)
    rows = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except UnicodeDecodeError:
            src.rejected, src.detail = "invalid", f"not UTF-8 text (byte {_utf8_error(body)} after the header)"
            return pl.DataFrame(schema=SCHEMA), rejects.empty(), 0
        except csv.Error as exc:
            rows += 1
            n_bad += 1
            if len(bad) < rejects.LOGGED:
                bad.append((reader.line_num + 1, f"not a CSV line: {exc}"))
            continue
        line = reader.line_num + 1  # the header is line 1
        if not any(v.strip() for v in row):
            continue
        rows += 1
        if len(row) == fields:
            row = [row[i] for i in order]  # the header's column order is free
        problem = _problem(row, fields)
        cap = _cap(row) if problem is None else None
        if isinstance(cap, str):
            problem = cap
        if problem:
            n_bad += 1
            if len(bad) < rejects.LOGGED:
                bad.append((line, problem))
            continue
        campaign, name, url = (v.strip() for v in row[:3])
        good.append((int(campaign), name or None, url or None, *cap, file_idx, line))
        if len(good) >= BATCH:
            frames.append(pl.DataFrame(good, schema=SCHEMA, orient="row"))
            good = []
    frames.append(pl.DataFrame(good, schema=SCHEMA, orient="row"))
    src.rows = rows
    valid = pl.concat(frames)
    logged = pl.DataFrame(
        {"file_idx": [file_idx] * len(bad[:rejects.LOGGED]), "line": [b[0] for b in bad[:rejects.LOGGED]],
         "reason": ["invalid"] * len(bad[:rejects.LOGGED]), "detail": [b[1] for b in bad[:rejects.LOGGED]],
         "dup_file_idx": [None] * len(bad[:rejects.LOGGED]), "dup_line": [None] * len(bad[:rejects.LOGGED])},
        schema=rejects.SCHEMA)
    return valid, logged, n_bad


def with_data(campaigns: pl.DataFrame, ids: pl.Series) -> tuple[pl.DataFrame, int]:
    """(the campaigns whose id is in ids, how many others there were): a master list
    of every campaign a company has is not published whole, one row per campaign
    without traffic in every version."""
    kept = campaigns.filter(pl.col("campaign_id").is_in(ids.unique().implode()))
    return kept, campaigns.height - kept.height


def latest(rows: pl.DataFrame) -> pl.DataFrame:
    """The last valid row per campaign (files in sorted order, then lines)."""
    return (rows.lazy().sort("file_idx", "line").group_by("campaign_id").last()
            .select(*COLUMNS).sort("campaign_id").collect())
