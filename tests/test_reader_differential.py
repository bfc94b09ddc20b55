"""The reader against a plain-Python reading of the same file (issue 18): random
malformed lines of every kind at random places, on purpose on both sides of every
boundary the reader has (its piece, its retry part, the exact path's batch of lines;
shrunk here so that small files cross them).  Few examples in `make test`, 20x in
`make fuzz` (BANNERS_FUZZ_SCALE)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader import validate
from loader.files import KINDS, SourceFile
from tests.conftest import examples

MAX_ID = 2**63 - 1
SMALL = {"SLICE": 2048, "RETRY_SLICE": 256, "EXACT_LINES": 32, "MAX_LINE": 120}


def reference(kind: str, body: str, max_line: int) -> tuple[list[tuple], list[int]]:
    """(accepted (line, values...), rejected line numbers), plainly."""
    n, good, bad = len(KINDS[kind]), [], []
    for number, line in enumerate(body.split("\n"), start=2):
        line = line.removesuffix("\r")
        if len(line.encode()) > max_line:
            bad.append(number)
            continue
        if not line.strip():
            continue
        fields = [f.strip(' \t"') for f in line.split(",")]
        values = []
        for col, f in zip(KINDS[kind], fields):
            if col == "revenue":
                try:
                    v = float(f)
                except ValueError:
                    v = None
                ok = v is not None and math.isfinite(v) and 0 <= v <= validate.MAX_REVENUE
            else:
                v = int(f) if f.isdigit() and f.isascii() else None
                ok = v is not None and v <= MAX_ID
            if not ok:
                break
            values.append(v)
        if len(fields) == n and len(values) == n:
            good.append((number, *values))
        else:
            bad.append(number)
    return good, bad


def _good_line(draw, kind: str) -> str:
    vals = []
    for col in KINDS[kind]:
        if col == "revenue":
            vals.append(draw(st.sampled_from(["0", "12.5", "3", "0.01", "1e3", "1000000000000000"])))
        else:
            vals.append(str(draw(st.sampled_from([0, 1, 7, 123456, MAX_ID]))))
    return ",".join(vals)


def _bad_line(draw, kind: str) -> str:
    n = len(KINDS[kind])
    ones = ["1"] * n
    which = draw(st.sampled_from(["short", "long", "text", "negative", "range", "quote", "blankfield",
                                  "blank", "overlong", "nan", "space"]))
    return {
        "short": ",".join(ones[: draw(st.integers(1, n - 1))]),
        "long": ",".join(ones + ["1"] * draw(st.integers(1, 3))),
        "text": ",".join(["x"] + ones[1:]),
        "negative": ",".join(ones[:-1] + ["-3"]),
        "range": ",".join(["9223372036854775808"] + ones[1:]),
        "quote": '"1,' + ",".join(ones[1:]) if draw(st.booleans()) else '1,"' + ",".join(ones[1:-1] + ['"']),
        "blankfield": ",".join(ones[:-1] + [""]),
        "blank": draw(st.sampled_from(["", " ", "\t", "\r"])),
        "overlong": ",".join(ones) + " " * draw(st.integers(SMALL["MAX_LINE"] - 10, SMALL["MAX_LINE"] + 10)),
        "nan": ",".join(ones[:-1] + ["nan"]),
        "space": " , ".join(ones),
    }[which]


@st.composite
def files(draw):
    kind = draw(st.sampled_from(sorted(KINDS)))
    size = draw(st.sampled_from([1, 5, 40, 200, 400]))
    lines = [_good_line(draw, kind) for _ in range(size)]
    for _ in range(draw(st.integers(0, 6))):
        # anywhere, or right before / after a byte boundary of the reader
        if draw(st.booleans()):
            at = draw(st.integers(0, len(lines)))
        else:
            offsets, total = [], 0
            for line in lines:
                total += len(line) + 1
                offsets.append(total)
            bound = draw(st.sampled_from([SMALL["SLICE"], SMALL["RETRY_SLICE"], 2 * SMALL["RETRY_SLICE"]]))
            at = next((i for i, o in enumerate(offsets) if o >= bound), len(lines)) + draw(st.integers(-2, 2))
            at = min(max(at, 0), len(lines))
        lines.insert(at, _bad_line(draw, kind))
    if draw(st.booleans()):  # a field short, twice, at the very end: the case that made polars panic
        short = ",".join(["1"] * (len(KINDS[kind]) - 1))
        lines += [short, short]
    end = draw(st.sampled_from(["\n", ""]))
    return kind, "\n".join(lines) + end


@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@pytest.mark.timeout(900)  # make fuzz: 20x the examples
@given(case=files())
def test_reader_equals_a_plain_reading(case, monkeypatch):
    kind, body = case
    for name, value in SMALL.items():
        monkeypatch.setattr(validate, name, value)
    src = SourceFile(rel="f.csv", path=Path("f.csv"), quarter=1, kind=kind, header=KINDS[kind])
    parsed = validate.parse_rows(src, body.encode(), 0)
    good, bad = reference(kind, body.removesuffix("\n") if body.endswith("\n") else body, SMALL["MAX_LINE"])
    assert sorted(parsed.invalid["line"].to_list()) == bad
    assert parsed.n_invalid == len(bad)
    cols = list(KINDS[kind])
    if kind == "impressions":  # distinct (banner, campaign) pairs, no line numbers
        got = sorted(set(parsed.valid.select(cols).iter_rows()))
        assert got == sorted({tuple(g[1:]) for g in good})
    else:
        got = sorted(parsed.valid.select("line", *cols).iter_rows())
        assert got == good
