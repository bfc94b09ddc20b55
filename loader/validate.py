"""Row-level parsing and validation of one file's body, all in polars expressions.

The body is taken in pieces of about SLICE bytes cut at line ends, so what a file
costs beyond its own bytes is its valid rows plus one piece's working set, whatever
its lines hold (a line of ten million commas, a huge quoted field, junk).  A line
longer than MAX_LINE is rejected before polars sees it.

Fast path, per piece: polars' own CSV reader with the kind's numeric schema, then
vectorised checks; a clean piece costs little more than the bare read.  Any trouble
(a parse error, a null, a negative or out-of-range value, a blank line) sends the
piece, in parts of RETRY_SLICE bytes, through the fast path again, and the parts
that still fail down the exact path: one string per line, so every line keeps its
number and a malformed line is rejected on its own with its reason.  Both paths
parse numbers with polars' parser, so they accept the same values.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import polars as pl

from . import rejects
from .files import KINDS, MAX_LINE, SourceFile

REVENUE = "revenue"
# The largest revenue one conversion may carry.  Every sum of accepted revenues then
# stays finite (2^63 rows of it are 9.2e33), which SPEC §5 asks of every output;
# a revenue that large is a unit or export error, not a sale.
MAX_REVENUE = 1e15
ID_RANGE = "0 to 2^63-1"
SLICE = 16 << 20
RETRY_SLICE = 1 << 20  # a piece the fast path refuses gets it again in parts this size
# The exact path holds a few hundred bytes per line in flight: it takes a piece in
# parts of about this many lines, so a file of one-letter lines costs a few MB, not
# hundreds.
EXACT_LINES = 16 << 10
_STRIP = ' \t"'
# Bytes that cannot occur in a well-formed CSV line: one absent from a piece serves as
# the separator when reading it one line per row.
_SEPARATORS = [chr(c) for c in (0x1F, 0x1E, 0x1D, 0x1C, *range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x1C), 0x7F)]
_SHOW = 40  # characters of an offending value quoted in a reject's detail


def dtype(column: str) -> pl.DataType:
    return pl.Float64 if column == REVENUE else pl.Int64


def typed_schema(kind: str) -> dict[str, pl.DataType]:
    cols = {c: dtype(c) for c in KINDS[kind]}
    where = {} if kind == "impressions" else {"file_idx": pl.UInt32, "line": pl.UInt32}
    return {"quarter": pl.Int64, **cols, **where}


class NotText(Exception):
    """A piece holds bytes that are not UTF-8 text."""


@dataclass
class Parsed:
    valid: pl.DataFrame  # typed_schema(kind)
    invalid: pl.DataFrame  # rejects.SCHEMA, the first rejects.LOGGED invalid lines
    n_invalid: int  # all of them


def _simple_line(n: int) -> re.Pattern:
    """n fields, each bare (no quote, no comma) or wholly quoted (no inner quote)."""
    field = rb'(?:"[^"\n]*"|[^",\n]*)'
    return re.compile(field + (rb"," + field) * (n - 1))


_SIMPLE = {n: _simple_line(n) for n in {len(cols) for cols in KINDS.values()}}


def _slices(body: bytes, size: int):
    """(start, end) of consecutive pieces of body, each about `size` bytes, cut after a
    line end; a piece is longer only when one line is."""
    start = 0
    while start < len(body):
        cut = body.find(b"\n", start + size)
        end = len(body) if cut < 0 else cut + 1
        yield start, end
        start = end


def _long_lines(piece: bytes) -> list[tuple[int, int]]:
    """(start, end) of each line of the piece longer than MAX_LINE bytes (end: its
    newline, or the piece's end).

    Such a line covers a whole stretch [k * h, (k + 1) * h) of the grid of half its
    limit h: a few hundred `find`s over the stretches of a piece find it, where one
    per line would be a Python loop over every row.
    """
    half, spans, pos = MAX_LINE // 2, [], 0
    while pos + half <= len(piece):
        if piece.find(b"\n", pos, pos + half) >= 0:
            pos += half
            continue
        start = piece.rfind(b"\n", 0, pos) + 1
        end = piece.find(b"\n", pos + half)
        end = len(piece) if end < 0 else end
        if end - start > MAX_LINE:
            spans.append((start, end))
        pos = end  # the grid goes on from here, still every `half` bytes
    return spans


def _utf8_error(data: bytes) -> int | None:
    """Offset of the first byte of data that is not UTF-8 text, or None; read a MiB at
    a time, so a line of a hundred megabytes is not copied to find out."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for pos in range(0, len(data), 1 << 20):
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(view[pos:pos + (1 << 20)], final=pos + (1 << 20) >= len(data))
        except UnicodeDecodeError as exc:
            return pos - pending + exc.start
    return None


def _too_long(piece: bytes, spans: list[tuple[int, int]], first_line: int) -> tuple[bytes, pl.DataFrame]:
    """The piece with the spans' lines emptied (kept as blank lines, so the others
    keep their numbers), and the emptied lines as line + detail."""
    lines, details, kept, line, prev = [], [], [], first_line, 0
    for start, end in spans:
        line += piece.count(b"\n", prev, start)
        lines.append(line)
        details.append(f"line too long ({end - start} bytes; at most {MAX_LINE})")
        kept.append(piece[prev:start])
        prev = end
    kept.append(piece[prev:])
    return b"".join(kept), pl.DataFrame({"line": lines, "detail": details},
                                        schema={"line": pl.UInt32, "detail": pl.String})


def _typed(src: SourceFile, frame: pl.DataFrame | pl.LazyFrame, file_idx: int, line: pl.Expr) -> pl.LazyFrame:
    cols = [pl.lit(src.quarter, dtype=pl.Int64).alias("quarter"), *[pl.col(c) for c in KINDS[src.kind]]]
    if src.kind == "impressions":
        # The rules only ask which banners a campaign has: one row per distinct
        # banner keeps memory to the banners, not the impressions (and impressions
        # carry no id, so no dedupe needs to know where they came from).
        return frame.lazy().select(cols).unique()
    cols += [pl.lit(file_idx, dtype=pl.UInt32).alias("file_idx"), line.cast(pl.UInt32).alias("line")]
    return frame.lazy().select(cols)


def _fast(src: SourceFile, piece: bytes, file_idx: int, first_line: int) -> tuple[pl.DataFrame, int] | None:
    """(the valid rows, the number of lines) when every line of the piece is valid,
    else None."""
    n = len(src.header)
    end = piece.find(b"\n")
    # polars sizes its columns by the first record: one of ten million commas would
    # make ten million columns.  A first line of n simple fields cannot.
    if not _SIMPLE[n].fullmatch(piece, 0, len(piece) if end < 0 else end):
        return None
    # A valid line holds n digits, n - 1 commas and its newline: more rows than that
    # allows means some are not valid, and reading blank or one-digit lines as n
    # numbers each would cost up to 24 times the piece's size.
    most = len(piece) // (2 * n) + 1
    schema = {c: dtype(c) for c in src.header}
    try:
        df = pl.read_csv(piece, has_header=False, schema=schema, n_rows=most + 1)
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if df.height > most:
        return None
    # Row i is line first_line + i: polars keeps blank lines as all-null rows (caught
    # below), and a quoted newline cannot parse as a number.
    checks = [pl.col(c).is_null().any() for c in src.header] + [
        (~pl.col(c).is_finite() | (pl.col(c) < 0) | (pl.col(c) > MAX_REVENUE)).any()
        if c == REVENUE
        else (pl.col(c) < 0).any()
        for c in src.header
    ]
    if any(df.select([c.alias(f"check{i}") for i, c in enumerate(checks)]).row(0)):
        return None
    src.rows += df.height
    # One chunk per piece: later operations on a frame of hundreds of chunks cost
    # twice the time and memory.  The reader returns one per thread and part, and
    # the default engine cuts its output into morsels; the in-memory one does not.
    # (Impressions are reduced to a few distinct rows: chunks do not matter there.)
    typed = _typed(src, df.rechunk(), file_idx, pl.int_range(pl.len()) + first_line)
    return typed.collect(engine="auto" if src.kind == "impressions" else "in-memory"), df.height


def format_text(template: str, *values: pl.Expr | str) -> pl.Expr:
    """pl.format(template, *values), built with concat_str.

    pl.format panics ("assertion failed: i < self.len()", a Rust PanicException no
    `except` of ours can tell from a bug) in the streaming engine when its input is
    a filtered part of a frame of several chunks: the rows of a later chunk, e.g. two
    short lines at the end of a CSV piece polars read in three chunks.  Measured on
    polars 2.0.0 and 2.1.0 (the newest); 1.44.2: see tests/test_loader_dirty.py.
    concat_str gives the same strings (null when a value is null) and does not panic.
    """
    texts = template.split("{}")
    if len(texts) != len(values) + 1:
        raise ValueError(f"{template!r} takes {len(texts) - 1} values, got {len(values)}")
    parts: list[pl.Expr] = []
    for i, value in enumerate(values):
        if texts[i]:
            parts.append(pl.lit(texts[i]))
        parts.append((pl.col(value) if isinstance(value, str) else value).cast(pl.String))
    if texts[-1]:
        parts.append(pl.lit(texts[-1]))
    return pl.concat_str(parts)


def _quote(col: str) -> pl.Expr:
    return pl.lit("'") + pl.col(col).str.slice(0, _SHOW) + pl.lit("'")


def _checks(kind: str) -> list[tuple[pl.Expr, pl.Expr]]:
    """(condition, detail) pairs over a line of the right field count (its stripped
    fields and their `_<field>` casts): the line is invalid when a condition holds,
    for the first one's reason."""
    checks = []
    for c in KINDS[kind]:
        v = pl.col(f"_{c}")
        if c == REVENUE:
            checks += [
                (pl.col(c) == "", pl.lit("revenue is missing")),
                (v.is_null(), pl.lit("revenue is not a number: ") + _quote(c)),
                (v.is_nan() | v.is_infinite(), pl.lit("revenue is not finite: ") + _quote(c)),
                (v < 0, pl.lit("revenue is negative: ") + _quote(c)),
                (v > MAX_REVENUE, pl.lit(f"revenue is too large (max {MAX_REVENUE:g}): ") + _quote(c)),
            ]
        else:
            checks += [
                (v.is_null() & pl.col(c).str.contains(r"^\+?[0-9]+$"),
                 pl.lit(f"{c} is out of range ({ID_RANGE}): ") + _quote(c)),
                (v.is_null() | (v < 0), pl.lit(f"{c} is not a non-negative integer: ") + _quote(c)),
            ]
    return checks


def _lines(piece: bytes) -> pl.DataFrame:
    """The piece's lines, one string each (column raw; blank ones null or blank)."""
    # The CSV reader with a separator byte that does not occur in the piece and no
    # quoting: half the memory of splitting one big string.
    sep = next((s for s in _SEPARATORS if s.encode() not in piece), None)
    try:
        if sep is not None:
            return pl.read_csv(piece, has_header=False, separator=sep, quote_char=None, schema={"raw": pl.String})
        lines = pl.Series("raw", [piece], dtype=pl.Binary).cast(pl.String).str.split("\n").explode()
        return lines.str.strip_suffix("\r").to_frame()
    except pl.exceptions.PolarsError:
        if _utf8_error(piece) is not None:
            raise NotText() from None
        raise


def _exact(
    src: SourceFile, piece: bytes, file_idx: int, first_line: int, details: int
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(valid typed rows, the first `details` invalid lines as line + detail, the
    number of invalid lines) of one piece."""
    kind, header = src.kind, src.header
    n = len(header)
    lines = (
        _lines(piece)
        .lazy()
        .with_row_index("line", offset=first_line)
        .filter(pl.col("raw").str.contains(r"\S"))
        .with_columns(nf=pl.col("raw").str.count_matches(",", literal=True) + 1)
    )
    # Only lines of the right field count are split and cast: a line of junk costs
    # its own bytes and two numbers, not n fields and their casts.
    checks = _checks(kind)
    fields = (
        lines.filter(pl.col("nf") == n)
        .select("line", pl.col("raw").str.split_exact(",", n - 1))
        .unnest("raw")
        .with_columns([pl.col(f"field_{i}").str.strip_chars(_STRIP).alias(name) for i, name in enumerate(header)])
        .with_columns([pl.col(c).cast(dtype(c), strict=False).alias(f"_{c}") for c in KINDS[kind]])
        .with_columns(_bad=pl.any_horizontal([cond.fill_null(False) for cond, _ in checks]))
    )
    detail = pl.when(checks[0][0]).then(checks[0][1])
    for cond, text in checks[1:]:
        detail = detail.when(cond).then(text)
    good = fields.filter(~pl.col("_bad")).select("line", *[pl.col(f"_{c}").alias(c) for c in KINDS[kind]])
    # Detail strings only for the lines that may be logged: a file of junk does not
    # build one per line.
    logged = pl.concat([
        lines.filter(pl.col("nf") != n).head(details)
        .select("line", format_text(f"expected {n} fields, got {{}}", pl.col("nf")).alias("detail")),
        fields.filter("_bad").head(details).select("line", detail.alias("detail")),
    ]).sort("line").head(details)
    valid, logged, counted, bad_fields = pl.collect_all([
        _typed(src, good, file_idx, pl.col("line")),
        logged.select(pl.col("line").cast(pl.UInt32), "detail"),
        lines.select(pl.len().alias("rows"), (pl.col("nf") != n).sum().alias("bad")),
        fields.select(pl.col("_bad").sum()),
    ])
    rows, bad = counted.row(0)
    src.rows += rows
    return valid, logged, bad + bad_fields.item()


class _Invalid:
    """The invalid lines of one file: the first rejects.LOGGED of them, and how many."""

    def __init__(self):
        self.logged: list[pl.DataFrame] = []
        self.room, self.count = rejects.LOGGED, 0

    def add(self, lines: pl.DataFrame, count: int) -> None:
        self.logged.append(lines.head(self.room))
        self.room -= self.logged[-1].height
        self.count += count


def _piece_rows(src: SourceFile, piece: bytes, file_idx: int, line: int, invalid: _Invalid) -> tuple[list, int]:
    """The valid rows of a piece the fast path refused, and the line after it.

    Parts of RETRY_SLICE bytes get the fast path again, so a few bad lines in a big
    clean file send a MiB down the exact path, not the whole piece; the parts that
    still fail go through the exact path EXACT_LINES lines at a time.
    """
    frames = []
    retry = len(piece) > RETRY_SLICE
    for start, end in _slices(piece, RETRY_SLICE) if retry else [(0, len(piece))]:
        part = piece[start:end] if retry else piece
        fast = _fast(src, part, file_idx, line) if retry else None
        if fast is not None:
            frames.append(fast[0])
            line += fast[1] - (0 if part.endswith(b"\n") else 1)
            continue
        size = max(1, len(part) * EXACT_LINES // max(part.count(b"\n"), 1))  # bytes, at the mean line length
        for sub_start, sub_end in _slices(part, size):
            sub = part[sub_start:sub_end]
            good, bad, n_bad = _exact(src, sub, file_idx, line, invalid.room)
            line += sub.count(b"\n")
            invalid.add(bad, n_bad)
            if good.height:
                frames.append(good)
    return frames, line


def parse_rows(src: SourceFile, body: bytes, file_idx: int) -> Parsed:
    """The valid typed rows and the invalid lines of one classified file's body.

    May reject the whole file (src.rejected) when it turns out not to be UTF-8 text.
    """
    kind = src.kind
    assert kind is not None and src.quarter is not None
    src.rows = 0
    valid: list[pl.DataFrame] = []
    invalid = _Invalid()
    line = 2  # line 1 is the header
    for start, end in _slices(body, SLICE):
        piece = body if (start, end) == (0, len(body)) else body[start:end]
        try:
            spans = _long_lines(piece)
            if spans:
                if _utf8_error(piece) is not None:
                    raise NotText()
                piece, too_long = _too_long(piece, spans, line)
                src.rows += too_long.height
                invalid.add(too_long, too_long.height)
            fast = _fast(src, piece, file_idx, line)
            if fast is not None:
                valid.append(fast[0])
                # one row per line: no count of the newlines on the clean path
                line += fast[1] - (0 if piece.endswith(b"\n") else 1)
                continue
            frames, line = _piece_rows(src, piece, file_idx, line, invalid)
            # Later steps on a frame of hundreds of chunks cost twice the memory: the
            # many small frames of a junk piece are joined (cheap: few valid rows).
            if frames:
                valid.append(pl.concat(frames, rechunk=len(frames) > SLICE // RETRY_SLICE))
        except NotText:
            at = start + (_utf8_error(body if (start, end) == (0, len(body)) else body[start:end]) or 0)
            src.rejected, src.detail = "invalid", f"not UTF-8 text (byte {at} after the header)"
            src.rows = 0
            return Parsed(pl.DataFrame(schema=typed_schema(kind)), rejects.empty(), 0)
    rows = pl.concat(valid, rechunk=False) if valid else pl.DataFrame(schema=typed_schema(kind))
    empty = pl.DataFrame(schema={"line": pl.UInt32, "detail": pl.String})
    logged = pl.concat(invalid.logged) if invalid.logged else empty
    return Parsed(
        rows,
        logged.select(
            pl.lit(file_idx, dtype=pl.UInt32).alias("file_idx"),
            pl.col("line").cast(pl.UInt32),
            pl.lit("invalid").alias("reason"),
            "detail",
            pl.lit(None, dtype=pl.UInt32).alias("dup_file_idx"),
            pl.lit(None, dtype=pl.UInt32).alias("dup_line"),
        ),
        invalid.count,
    )
