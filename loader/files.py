"""Finds the input files and tells each one's quarter, kind and fate (SPEC §4)."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

KINDS: dict[str, tuple[str, ...]] = {
    "impressions": ("banner_id", "campaign_id"),
    "clicks": ("click_id", "banner_id", "campaign_id"),
    "conversions": ("conversion_id", "click_id", "revenue"),
}
# Optional: a campaign's name and landing page (SPEC §7); in any folder, quarter or not.
CAMPAIGN_COLUMNS = ("campaign_id", "name", "landing_url")
# ... and optionally its frequency cap (README: Frequency caps)
CAP_COLUMNS = ("cap_impressions", "cap_window")
_BY_COLUMNS = {frozenset(cols): kind for kind, cols in KINDS.items()} | {
    frozenset(CAMPAIGN_COLUMNS): "campaigns", frozenset(CAMPAIGN_COLUMNS + CAP_COLUMNS): "campaigns"}
_SUFFIX = re.compile(r"_([1-4])\.csv$", re.IGNORECASE)
_BLANK = re.compile(rb"\s*")
BOM = b"\xef\xbb\xbf"
# No header or row comes near this (a few names or numbers); a longer line is
# rejected as a whole, never handed to polars, whose strings cost several times a
# line of megabytes.
MAX_LINE = 64 << 10


@dataclass
class SourceFile:
    """One `*.csv` under DATA_DIR and what was decided about it as a whole."""

    rel: str
    path: Path
    size: int = 0
    sha256: str = ""
    quarter: int | None = None
    kind: str | None = None
    header: tuple[str, ...] = ()
    # None while the file is usable; else "duplicate_file" or "invalid".
    rejected: str | None = None
    detail: str = ""
    duplicate_of: str | None = None
    rows: int = 0
    accepted: int = 0
    rejected_rows: dict[str, int] = field(default_factory=dict)


def find_csv_files(data_dir: Path) -> list[SourceFile]:
    """Every `*.csv` below data_dir, in sorted order of the relative POSIX path.

    A folder that cannot be listed (no permission, gone half-way) is not skipped:
    it comes back as an entry rejected `invalid`, its rel ending in "/", since a
    quarter's files may be in it.  Symlinked folders are not followed (as before).
    """
    found = []

    def unreadable(exc: OSError) -> None:
        path = Path(exc.filename or data_dir)
        rel = path.relative_to(data_dir).as_posix()
        folder = "./" if rel == "." else rel + "/"
        found.append(SourceFile(rel=folder, path=path, quarter=quarter_of(folder),
                                rejected="invalid", detail=f"cannot read folder: {exc.strerror}"))

    for root, _, names in os.walk(data_dir, onerror=unreadable):
        for name in names:
            if name.lower().endswith(".csv"):
                path = Path(root, name)
                found.append(SourceFile(rel=path.relative_to(data_dir).as_posix(), path=path))
    return sorted(found, key=lambda f: f.rel)


def quarter_of(rel: str) -> int | None:
    """Nearest parent folder named 1-4 (inside DATA_DIR), else a `_1`..`_4` suffix."""
    for part in reversed(rel.split("/")[:-1]):
        if part in ("1", "2", "3", "4"):
            return int(part)
    m = _SUFFIX.search(rel.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def parse_header(first_line: str) -> tuple[str, ...] | None:
    """The header's column names, or None when it is not a CSV line (csv raises on a
    lone carriage return, e.g. a file with old Mac line ends, or on a NUL)."""
    try:
        row = next(csv.reader([first_line]), [])
    except csv.Error:
        return None
    return tuple(col.strip().lower() for col in row)


def kind_of(header: tuple[str, ...]) -> str | None:
    if len(set(header)) != len(header):
        return None
    return _BY_COLUMNS.get(frozenset(header))


def read_and_hash(src: SourceFile) -> tuple[bytes, str]:
    """The file's bytes and their sha256 (hashlib releases the GIL: this can run in a
    thread while polars parses the previous file).  OSError when it cannot be read."""
    # A FIFO or a device named *.csv would block or never end: only regular files
    # (O_NONBLOCK: opening a FIFO must not wait for a writer; no effect on files).
    with open(os.open(src.path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(0, "not a regular file")
        data = fh.read()
    return data, hashlib.sha256(data).hexdigest()


def classify(src: SourceFile, data: bytes, sha256: str, seen: dict[str, SourceFile]) -> bytes | None:
    """Checks one file's bytes as a whole.

    Returns the body to parse (BOM and header line removed, still bytes), or None
    when the whole file is rejected; `seen` maps sha256 -> the first file with it.
    """
    src.size = len(data)
    src.sha256 = sha256
    src.quarter = quarter_of(src.rel)
    first_copy = seen.get(src.sha256)
    if first_copy is not None:
        src.rejected, src.duplicate_of = "duplicate_file", first_copy.rel
        src.kind, src.header = first_copy.kind, first_copy.header  # same bytes, same header
        src.detail = f"same bytes as {first_copy.rel}"
        return None
    seen[src.sha256] = src
    begin = len(BOM) if data.startswith(BOM) else 0  # an offset: no copy of the file
    if b"\x00" in data:
        return _reject(src, "not text: contains NUL bytes")
    end = data.find(b"\n", begin, begin + MAX_LINE + 2)  # + 2: the newline, and a CR before it
    if end < 0 and len(data) - begin > MAX_LINE:
        return _reject(src, f"no header: the first line is longer than {MAX_LINE} bytes")
    try:
        # The body's encoding is checked by the parsers (numbers are ASCII; the exact
        # path reads text): a clean file is not decoded twice.
        first = data[begin:end if end >= 0 else len(data)].decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as exc:
        return _reject(src, f"not UTF-8 text (byte {begin + exc.start})")
    if not first.strip():
        return _reject(src, "empty file" if _BLANK.fullmatch(data, begin) else "no header")
    header = parse_header(first)
    if header is None:
        return _reject(src, "unreadable header line (a lone carriage return? lines must end in LF or CRLF)")
    src.header = header
    src.kind = kind_of(src.header)
    if src.kind is None:
        expected = "; ".join(",".join(cols) for cols in (*KINDS.values(), CAMPAIGN_COLUMNS))
        return _reject(src, f"unknown header {first[:200]!r}; expected one of: {expected}")
    if src.quarter is None and src.kind != "campaigns":
        return _reject(src, "no quarter: put it in a folder named 1-4 or name it *_1.csv .. *_4.csv")
    return b"" if end < 0 else data[end + 1:]


def _reject(src: SourceFile, detail: str) -> None:
    src.rejected, src.detail = "invalid", detail
    return None
