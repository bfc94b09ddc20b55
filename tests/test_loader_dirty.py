"""Dirty files never crash a load (issue 18): the polars panic, the safety net, the
real set with junk lines."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import polars as pl
import pytest

from loader import pipeline
from loader.pipeline import compute
from loader.validate import format_text


def _chunked() -> pl.LazyFrame:
    # Two chunks; the filter keeps the rows of the second: what _exact saw when a
    # piece read in three chunks ended in two short lines.
    df = pl.concat([pl.DataFrame({"x": [0] * 10}), pl.DataFrame({"x": [1, 1]})], rechunk=False)
    return df.lazy().filter(pl.col("x") == 1)


@pytest.mark.xfail(raises=BaseException, strict=True,
                   reason="polars 1.44.2-2.1.0: pl.format panics in the streaming engine; "
                          "when this passes, format_text can go back to pl.format")
def test_polars_format_panics():
    """The minimal reproduction of the polars bug (a pyo3 PanicException)."""
    out = _chunked().select(pl.format("expected 3 fields, got {}", pl.col("x"))).collect(engine="streaming")
    assert out.height == 2


def test_format_text_is_pl_format_without_the_panic():
    expr = format_text("a {} b {}:{}", pl.col("x"), "x", pl.lit(3))
    out = _chunked().select(expr.alias("s")).collect(engine="streaming")["s"].to_list()
    same = _chunked().select(pl.format("a {} b {}:{}", pl.col("x"), "x", pl.lit(3)).alias("s"))
    assert out == same.collect(engine="in-memory")["s"].to_list() == ["a 1 b 1:3"] * 2
    assert pl.select(format_text("{}!", pl.lit(None, dtype=pl.Int64))).item() is None


def _clicks(n: int) -> str:
    return "click_id,banner_id,campaign_id\n" + "".join(f"{150000 + i},{100 + i % 300},{1 + i % 50}\n" for i in range(n))


@pytest.mark.parametrize("n", [2372, 5000, 20000])
def test_two_short_lines_at_the_end_are_rejected_not_a_panic(tmp_path, n):
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "clicks_2.csv").write_text(_clicks(n) + "1,2\n1,2\n")
    res = compute(tmp_path, seed=1)
    bad = res.rejects.filter(pl.col("reason") == "invalid")
    assert bad["line"].to_list() == [n + 2, n + 3]
    assert bad["detail"].to_list() == ["expected 3 fields, got 2"] * 2
    assert res.files[0].accepted == n and res.invalid == 2


def test_an_unexpected_error_rejects_the_file_and_the_load_goes_on(tmp_path, monkeypatch):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "clicks_1.csv").write_text(_clicks(10))
    (tmp_path / "1" / "impressions_1.csv").write_text("banner_id,campaign_id\n100,1\n")
    real = pipeline.parse_rows

    def broken(src, body, idx):
        if src.kind == "clicks":
            raise pl.exceptions.PanicException("assertion failed: i < self.len()")
        return real(src, body, idx)

    monkeypatch.setattr(pipeline, "parse_rows", broken)
    res = compute(tmp_path, seed=1)
    clicks, impressions = res.files
    assert clicks.rejected == "invalid" and "PanicException: assertion failed" in clicks.detail
    assert impressions.rejected is None and impressions.accepted == 1
    line = res.rejects.filter(pl.col("file") == "1/clicks_1.csv").to_dicts()
    assert len(line) == 1 and line[0]["line"] is None and line[0]["detail"] == clicks.detail
    assert res.invalid == 1 and res.accepted_rows == 1


def _real_set() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "datachef" / "csv").is_dir():
            return parent / "shared" / "datachef" / "csv"
    return None


@pytest.fixture
def real_csv() -> Path:
    found = _real_set()
    if found is None:
        pytest.skip("shared/datachef is absent")
    return found


@pytest.mark.datachef
def test_issue_case_first_20000_lines_plus_two_short_ones(real_csv, tmp_path):
    (tmp_path / "2").mkdir()
    lines = (real_csv / "2" / "clicks_2.csv").read_text().splitlines(keepends=True)[:20000]
    (tmp_path / "2" / "clicks_2.csv").write_text("".join(lines) + "1,2\n1,2\n")
    res = compute(tmp_path, seed=1)
    assert res.rejects["line"].to_list() == [20001, 20002]
    assert res.invalid == 2 and res.files[0].accepted == 19999


@pytest.mark.datachef
@pytest.mark.parametrize("seed", range(6))
def test_dirty_copies_of_the_real_set_reject_exactly_the_junk(real_csv, tmp_path, seed):
    """A few malformed lines at random places in copies of the real files: exactly
    those are rejected, every other row is accepted as from the clean copy."""
    rnd = random.Random(seed)
    shutil.copytree(real_csv, tmp_path / "clean")
    dirty = tmp_path / "dirty"
    shutil.copytree(real_csv, dirty)
    expected = {}
    for path in sorted(dirty.rglob("*.csv")):
        if path.name.startswith("conversions"):
            continue  # a junk line replacing a click could orphan a conversion
        lines = path.read_text().splitlines(keepends=True)
        n = lines[0].count(",") + 1
        ones = ["1"] * n
        junk = [",".join(ones[1:]), ",".join(ones + ["1"]), ",".join(["x"] + ones[1:]),
                ",".join(["-5"] + ones[1:]), ",".join(["99999999999999999999"] + ones[1:]),
                '"' + ",".join(ones[1:]), ",".join(["1", ""] + ones[2:])]
        where = sorted(rnd.sample(range(1, len(lines) + 1), 3))
        if rnd.random() < 0.5:
            where[-2:] = [len(lines), len(lines)]  # at the very end, the case that panicked
        for k, at in enumerate(where):
            lines.insert(at + k, rnd.choice(junk) + "\n")
        path.write_text("".join(lines))
        expected[path.relative_to(dirty).as_posix()] = [at + k + 1 for k, at in enumerate(where)]
    clean, res = compute(tmp_path / "clean", seed=1), compute(dirty, seed=1)
    got = {f: sorted(g["line"].to_list()) for (f,), g in res.rejects.filter(pl.col("reason") == "invalid").group_by("file")}
    assert got == expected
    assert res.invalid == sum(map(len, expected.values()))
    assert res.accepted_rows == clean.accepted_rows
    assert res.selections.equals(clean.selections)
