"""Row-level parsing and validation of one file's body, all in polars expressions.

Fast path: polars' own CSV reader with the kind's numeric schema, then vectorised
checks; a clean file (the usual case) costs little more than the bare read.  Any
trouble (a parse error, a null, a negative id, a bad revenue, a blank line) sends
the file down the exact path: the body read as one string column per line (a
separator byte that does not occur in it, no quoting), so every line keeps its
number and a malformed line is rejected on its own with its reason.  Both paths
parse numbers with polars' parser, so they accept the same values.
"""

from __future__ import annotations

import polars as pl

from .files import KINDS, SourceFile

REVENUE = "revenue"
# Bytes that never occur in a well-formed CSV: one of them serves as the separator.
_SEPARATORS = [chr(c) for c in (0x1F, 0x1E, 0x1D, 0x1C, 0x01, 0x02, 0x03, 0x04, 0x05)]
_STRIP = ' \t"'
_SHOW = 40  # characters of an offending value quoted in a reject's detail

REJECT_SCHEMA = {
    "file_idx": pl.UInt32,
    "line": pl.UInt32,
    "reason": pl.String,
    "detail": pl.String,
    "dup_file_idx": pl.UInt32,
    "dup_line": pl.UInt32,
}


def dtype(column: str) -> pl.DataType:
    return pl.Float64 if column == REVENUE else pl.Int64


def typed_schema(kind: str) -> dict[str, pl.DataType]:
    cols = {c: dtype(c) for c in KINDS[kind]}
    where = {} if kind == "impressions" else {"file_idx": pl.UInt32, "line": pl.UInt32}
    return {"quarter": pl.Int64, **cols, **where}


def empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA)


def _quote(col: str) -> pl.Expr:
    return pl.lit("'") + pl.col(col).str.slice(0, _SHOW) + pl.lit("'")


def _typed(src: SourceFile, frame: pl.DataFrame, file_idx: int) -> pl.DataFrame:
    cols = [pl.lit(src.quarter, dtype=pl.Int64).alias("quarter"), *[pl.col(c) for c in KINDS[src.kind]]]
    if src.kind != "impressions":
        # Impressions carry no id, so no row-level dedupe needs to know where they came from.
        cols += [pl.lit(file_idx, dtype=pl.UInt32).alias("file_idx"),
                 (pl.int_range(pl.len(), dtype=pl.UInt32) + 2).alias("line")]
    return frame.select(cols)


def _fast(src: SourceFile, body: bytes, file_idx: int) -> pl.DataFrame | None:
    """The valid rows when every line of the body is valid, else None."""
    schema = {c: dtype(c) for c in src.header}
    try:
        df = pl.read_csv(body, has_header=False, schema=schema)
    except (pl.exceptions.PolarsError, ValueError):
        return None
    # Row i is line i + 2: polars keeps blank lines as all-null rows (caught below),
    # and a quoted newline cannot parse as a number.
    checks = [pl.col(c).is_null().any() for c in src.header] + [
        (~pl.col(c).is_finite() | (pl.col(c) < 0)).any() if c == REVENUE else (pl.col(c) < 0).any()
        for c in src.header
    ]
    if any(df.select([c.alias(f"check{i}") for i, c in enumerate(checks)]).row(0)):
        return None
    src.rows = df.height
    return _typed(src, df, file_idx)


def parse_rows(src: SourceFile, body: bytes, file_idx: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid typed rows, invalid rows) of one classified file's body.

    May reject the whole file (src.rejected) when it turns out not to be UTF-8 text.
    """
    kind, header = src.kind, src.header
    assert kind is not None and src.quarter is not None
    blank = not body or body.isspace()  # no copy, unlike strip()
    if not blank:
        fast = _fast(src, body, file_idx)
        if fast is not None:
            return fast, empty_rejects()
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            src.rejected, src.detail = "invalid", f"not UTF-8 text (byte {exc.start} after the header)"
            return pl.DataFrame(schema=typed_schema(kind)), empty_rejects()
    sep = next((s for s in _SEPARATORS if s.encode() not in body), None)
    if blank or sep is None:
        # sep is None only for bytes full of control characters: nothing to parse.
        return pl.DataFrame(schema=typed_schema(kind)), empty_rejects()
    raw = pl.read_csv(
        body,
        has_header=False,
        separator=sep,
        quote_char=None,
        schema={"raw": pl.String},
    )
    n = len(header)
    fields = [f"field_{i}" for i in range(n)]
    lines = (
        raw.lazy()
        .with_row_index("line", offset=2)  # line 1 is the header
        .filter(pl.col("raw").is_not_null() & (pl.col("raw").str.strip_chars() != ""))
        .with_columns(
            nf=pl.col("raw").str.count_matches(",", literal=True) + 1,
            parts=pl.col("raw").str.split_exact(",", n - 1),
        )
        .unnest("parts")
        .with_columns(
            [pl.col(f).str.strip_chars(_STRIP).alias(name) for f, name in zip(fields, header)]
        )
        .with_columns(
            [
                pl.col(c).cast(dtype(c), strict=False).alias(f"_{c}")
                for c in KINDS[kind]
            ]
        )
    )
    problem = pl.when(pl.col("nf") != n).then(
        pl.format("expected {} fields, got {}", pl.lit(n), pl.col("nf"))
    )
    for c in KINDS[kind]:
        if c == REVENUE:
            v = pl.col(f"_{c}")
            problem = (
                problem.when(pl.col(c) == "")
                .then(pl.lit("revenue is missing"))
                .when(v.is_null())
                .then(pl.lit("revenue is not a number: ") + _quote(c))
                .when(v.is_nan() | v.is_infinite())
                .then(pl.lit("revenue is not finite: ") + _quote(c))
                .when(v < 0)
                .then(pl.lit("revenue is negative: ") + _quote(c))
            )
        else:
            problem = problem.when(pl.col(f"_{c}").is_null() | (pl.col(f"_{c}") < 0)).then(
                pl.lit(f"{c} is not a non-negative integer: ") + _quote(c)
            )
    checked = lines.with_columns(detail=problem.otherwise(None)).collect()
    bad = checked.filter(pl.col("detail").is_not_null())
    good = checked.filter(pl.col("detail").is_null())
    valid = good.select(
        pl.lit(src.quarter, dtype=pl.Int64).alias("quarter"),
        *[pl.col(f"_{c}").alias(c) for c in KINDS[kind]],
        pl.lit(file_idx, dtype=pl.UInt32).alias("file_idx"),
        pl.col("line").cast(pl.UInt32),
    ).select(list(typed_schema(kind)))
    invalid = bad.select(
        pl.lit(file_idx, dtype=pl.UInt32).alias("file_idx"),
        pl.col("line").cast(pl.UInt32),
        pl.lit("invalid").alias("reason"),
        pl.col("detail"),
        pl.lit(None, dtype=pl.UInt32).alias("dup_file_idx"),
        pl.lit(None, dtype=pl.UInt32).alias("dup_line"),
    )
    src.rows = checked.height
    return valid, invalid
