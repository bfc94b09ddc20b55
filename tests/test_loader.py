"""Reading, validation and row acceptance (SPEC §4 'Loading'), through `compute`."""

import json
import os
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import cli
from loader import rejects as reject_log, validate
from loader.files import quarter_of
from loader.pipeline import compute

CLICKS = "click_id,banner_id,campaign_id\n"
CONVS = "conversion_id,click_id,revenue\n"
IMPS = "banner_id,campaign_id\n"


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def rejects(result):
    return [
        (r["file"], r["line"], r["reason"], r["duplicate_of"]) for r in result.rejects.iter_rows(named=True)
    ]


@pytest.fixture
def base(tmp_path):
    write(tmp_path, "1/impressions_1.csv", IMPS + "100,7\n100,7\n101,7\n")
    write(tmp_path, "1/clicks_1.csv", CLICKS + "1,100,7\n2,101,7\n3,101,7\n")
    write(tmp_path, "1/conversions_1.csv", CONVS + "10,1,2.5\n11,2,1.0\n")
    return tmp_path


@pytest.mark.parametrize(
    "rel, q",
    [("1/x.csv", 1), ("a/4/b/x.csv", 4), ("2/sub/x.csv", 2), ("x_3.csv", 3), ("dir/clicks_2.csv", 2),
     ("x.csv", None), ("5/x_7.csv", None), ("3/x_1.csv", 3), ("x_1.CSV", 1)],
)
def test_quarter_of(rel, q):
    assert quarter_of(rel) == q


def test_clean_folder_accepts_everything(base):
    res = compute(base, seed=1)
    assert rejects(res) == []
    assert res.accepted_rows == 3 + 3 + 2
    sel = res.selections
    assert sel["banner_id"].to_list() == [100, 101]
    assert sel["revenue"].to_list() == [2.5, 1.0]
    assert sel["clicks"].to_list() == [1, 2]
    row = res.summary.filter(pl.col("kind") == "impressions").row(0, named=True)
    assert (row["rows"], row["accepted"]) == (3, 3)  # repeated impressions are kept


def test_header_column_order_is_free_and_suffix_gives_quarter(tmp_path):
    write(tmp_path, "clicks_2.csv", "campaign_id,click_id,banner_id\n7,1,100\n")
    res = compute(tmp_path, seed=1)
    assert res.selections.select("quarter", "campaign_id", "banner_id").rows() == [(2, 7, 100)]


def test_bom_crlf_spaces_and_quotes_are_read(tmp_path):
    write(tmp_path, "3/c.csv", b"\xef\xbb\xbfclick_id,banner_id,campaign_id\r\n1, 100 ,\"7\"\r\n\r\n2,101,7\r\n")
    res = compute(tmp_path, seed=1)
    assert rejects(res) == []
    assert sorted(res.selections["banner_id"].to_list()) == [100, 101]


def test_duplicate_file_in_another_quarter_is_rejected_whole(base):
    write(base, "2/clicks_2.csv", (base / "1/clicks_1.csv").read_bytes())
    res = compute(base, seed=1)
    assert rejects(res) == [("2/clicks_2.csv", None, "duplicate_file", "1/clicks_1.csv")]
    assert res.quarters == [1]


def test_file_holding_part_of_another_gives_duplicate_rows(base):
    write(base, "1/more_clicks.csv", CLICKS + "2,101,7\n4,101,7\n")
    res = compute(base, seed=1)
    # "1/clicks_1.csv" sorts before "1/more_clicks.csv": the first occurrence wins
    assert rejects(res) == [("1/more_clicks.csv", 2, "duplicate_row", "1/clicks_1.csv:3")]
    assert res.selections.filter(pl.col("banner_id") == 101)["clicks"].item() == 3


def test_conflicting_id_is_rejected_and_first_kept(base):
    write(base, "1/z.csv", CLICKS + "1,555,7\n")
    write(base, "1/zz.csv", CONVS + "10,1,9.99\n10,1,2.50\n")
    res = compute(base, seed=1)
    assert rejects(res) == [
        ("1/z.csv", 2, "conflict", "1/clicks_1.csv:2"),
        ("1/zz.csv", 2, "conflict", "1/conversions_1.csv:2"),
        ("1/zz.csv", 3, "duplicate_row", "1/conversions_1.csv:2"),
    ]
    assert 555 not in res.selections["banner_id"].to_list()


def test_same_ids_in_different_quarters_are_independent(base):
    write(base, "2/clicks.csv", CLICKS + "1,300,7\n")
    write(base, "2/conversions.csv", CONVS + "10,1,1.0\n")
    res = compute(base, seed=1)
    assert rejects(res) == []
    assert res.selections.filter(pl.col("quarter") == 2)["banner_id"].to_list() == [300]


def test_orphan_conversion(base):
    write(base, "1/late.csv", CONVS + "12,99,1.0\n")
    write(base, "2/conv.csv", CONVS + "13,1,1.0\n")  # click 1 exists in quarter 1 only
    res = compute(base, seed=1)
    assert [(f, line, reason) for f, line, reason, _ in rejects(res)] == [
        ("1/late.csv", 2, "orphan"), ("2/conv.csv", 2, "orphan")]
    assert res.quarters == [1]


def test_conversion_of_a_rejected_click_is_orphan(base):
    write(base, "1/x_clicks.csv", CLICKS + "5,abc,7\n")
    write(base, "1/y_conv.csv", CONVS + "20,5,1.0\n")
    res = compute(base, seed=1)
    assert [r[2] for r in rejects(res)] == ["invalid", "orphan"]


@pytest.mark.parametrize(
    "line, detail",
    [
        ("1,100", "expected 3 fields, got 2"),
        ("1,100,7,8", "expected 3 fields, got 4"),
        ("-1,100,7", "click_id is not a non-negative integer"),
        ("1.5,100,7", "click_id is not a non-negative integer"),
        ("1,,7", "banner_id is not a non-negative integer"),
        ("1,100,x", "campaign_id is not a non-negative integer"),
        ("99999999999999999999,100,7", "click_id is out of range (0 to 2^63-1)"),
    ],
)
def test_invalid_click_rows(tmp_path, line, detail):
    write(tmp_path, "1/c.csv", CLICKS + "9,100,7\n" + line + "\n")
    res = compute(tmp_path, seed=1)
    [rej] = res.rejects.iter_rows(named=True)
    assert (rej["line"], rej["reason"], rej["kind"]) == (3, "invalid", "clicks")
    assert rej["detail"].startswith(detail)


@pytest.mark.parametrize(
    "revenue, detail",
    [("", "revenue is missing"), ("-1", "revenue is negative"), ("NaN", "revenue is not finite"),
     ("inf", "revenue is not finite"), ("-inf", "revenue is not finite"), ("abc", "revenue is not a number"),
     ("1e308", "revenue is too large (max 1e+15): '1e308'"),
     ("1000000000000000.5", "revenue is too large (max 1e+15)")],
)
def test_invalid_revenue(base, revenue, detail):
    write(base, "1/zz.csv", CONVS + f"30,3,{revenue}\n")
    res = compute(base, seed=1)
    [rej] = res.rejects.iter_rows(named=True)
    assert rej["reason"] == "invalid" and rej["detail"].startswith(detail)


@pytest.mark.parametrize(
    "content, detail",
    [
        (b"", "empty file"),
        (b"\n\n", "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not text"),
        (b"\xff\xfeclick_id,banner_id\n", "not UTF-8"),
        (b"click_id,banner_id,campaign_id\n1,2,3\n4,5,\xe9t\xe9\n", "not UTF-8"),
        (b"click_id,banner_id,campaign_id\n1,2,3\x00\n", "not text"),
        (b"foo,bar\n1,2\n", "unknown header"),
        (b"click_id,banner_id,banner_id\n1,2,3\n", "unknown header"),
        (b"1,100,7\n2,100,7\n", "unknown header"),
        (b"banner_id,campaign_id\r100,7\r101,7\r", "unreadable header"),  # old Mac line ends
        (b"\r\xc3\xa9\n", "unreadable header"),  # found by the fuzz test: csv raised on it
    ],
)
def test_whole_file_invalid(base, content, detail):
    write(base, "1/bad.csv", content)
    res = compute(base, seed=1)
    [rej] = res.rejects.iter_rows(named=True)
    assert (rej["file"], rej["line"], rej["reason"]) == ("1/bad.csv", None, "invalid")
    assert detail in rej["detail"]


def test_file_without_quarter_is_invalid(base):
    write(base, "misc/clicks.csv", CLICKS + "1,100,7\n")
    res = compute(base, seed=1)
    [rej] = res.rejects.iter_rows(named=True)
    assert rej["reason"] == "invalid" and "no quarter" in rej["detail"]


def test_header_only_file_is_accepted_with_no_rows(base):
    write(base, "1/empty_clicks.csv", CLICKS)
    res = compute(base, seed=1)
    assert rejects(res) == []


def test_same_folder_twice_gives_same_result(base):
    a, b = compute(base, seed=5), compute(base, seed=5)
    assert a.selections.equals(b.selections) and a.rejects.equals(b.rejects)


def test_summary_counts_each_reason(base):
    write(base, "1/z.csv", CLICKS + "1,100,7\n1,999,7\nbad\n")
    res = compute(base, seed=1)
    row = res.summary.filter((pl.col("quarter") == 1) & (pl.col("kind") == "clicks")).row(0, named=True)
    assert row["files"] == 2 and row["rows"] == 6 and row["accepted"] == 3
    assert (row["duplicate_row"], row["conflict"], row["invalid"]) == (1, 1, 1)


def test_reject_lines_are_json_serialisable(base):
    write(base, "2/clicks_2.csv", (base / "1/clicks_1.csv").read_bytes())
    res = compute(base, seed=1)
    for row in res.rejects.iter_rows(named=True):
        assert set(json.loads(json.dumps(row))) == {"file", "line", "kind", "reason", "detail", "duplicate_of"}


# -- one bad line, one bad file: bounded memory (issue 8, item 2) ------------------------

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child of a
# big pytest worker would report the worker's size.
PEAK = """
import re, sys
from pathlib import Path
from loader.pipeline import compute
res = compute(Path(sys.argv[1]), seed=1)
status = Path("/proc/self/status").read_text()
print(int(re.search(r"VmHWM:\\s*(\\d+) kB", status).group(1)) * 1024, res.invalid)
"""


def peak_of_compute(folder: Path) -> tuple[int, int]:
    """(peak RSS in bytes, invalid count) of `compute(folder)` in a fresh process."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", PEAK, str(folder)], capture_output=True, text=True, check=True)
    peak, invalid = out.stdout.split()
    return int(peak), int(invalid)


MB = 1 << 20
SIZE = 4 * MB
BAD_BODIES = {
    # polars sized its columns by the first record: 3 M commas made 3 M columns (1.4 GB)
    "commas_first": "," * SIZE + "\n9,100,7\n",
    "commas_later": "9,100,7\n" + "," * SIZE + "\n",
    "quoted_field": '9,100,"' + "x" * SIZE + '"\n',
    "quotes": "9,100,7\n" + '"' * SIZE + "\n",
    "open_quote_then_commas": '"9,100,7\n"' + "," * SIZE + "\n",
    # every line rejected: one reject-log row each made 2.4 GB of a 200 MB file
    "junk_lines": "9,100,7\n" + "junk, not a row\n" * (SIZE // 16),
    "short_lines": "9,100,7\n" + "x\n" * (SIZE // 2),
    "bad_values": "9,100,7\n" + "x,y,z\n" * (SIZE // 6),
}


def test_line_of_many_commas_is_one_invalid_line(tmp_path):
    write(tmp_path, "1/a.csv", CLICKS + "," * 60_000 + "\n1,100,7\n")
    write(tmp_path, "1/b.csv", CLICKS + "2,101,7\n" + "," * 1_000_000 + "\n3,101,7\n")
    res = compute(tmp_path, seed=1)
    assert [(r["file"], r["line"], r["reason"], r["detail"]) for r in res.rejects.iter_rows(named=True)] == [
        ("1/a.csv", 2, "invalid", "expected 3 fields, got 60001"),
        ("1/b.csv", 3, "invalid", "line too long (1000000 bytes; at most 65536)"),
    ]
    assert res.accepted_rows == 3 and res.invalid == 2


def test_long_line_of_bytes_that_are_not_utf8_rejects_the_file(tmp_path):
    write(tmp_path, "1/c.csv", CLICKS.encode() + b"1,100,7\n" + b"x" * 100_000 + b"\xff\n")
    [rej] = compute(tmp_path, seed=1).rejects.iter_rows(named=True)
    assert (rej["line"], rej["reason"]) == (None, "invalid")
    assert rej["detail"] == "not UTF-8 text (byte 100008 after the header)"


def test_header_line_longer_than_any_header_rejects_the_file(tmp_path):
    write(tmp_path, "1/c.csv", "click_id," + "x" * 100_000)
    [rej] = compute(tmp_path, seed=1).rejects.iter_rows(named=True)
    assert (rej["line"], rej["reason"]) == (None, "invalid") and "longer than 65536 bytes" in rej["detail"]


def test_one_bad_file_costs_no_more_memory_than_a_clean_one_of_its_size(tmp_path):
    clean = tmp_path / "clean"
    write(clean, "1/c.csv", CLICKS + "".join(f"{i:07d},{100 + i % 400},{i % 50:02d}\n" for i in range(SIZE // 15)))
    clean_peak, invalid = peak_of_compute(clean)
    assert invalid == 0
    small = tmp_path / "small"
    write(small, "1/a.csv", CLICKS + "1,100,7\n")
    write(small, "1/b.csv", CLICKS + "2,100,7\nx\n")
    # The interpreter, polars, and what its CSV reader and string kernels take on
    # first use (some 20 MB, whatever the size).
    floor, _ = peak_of_compute(small)
    over = {}
    for name, body in BAD_BODIES.items():
        folder = tmp_path / name
        write(folder, "1/c.csv", CLICKS + body)
        peak, invalid = peak_of_compute(folder)
        assert invalid >= 1, name
        # At most what a clean file of its size costs, and a small multiple of its size
        # (before: 1.4 GB for 3 MB of commas, 861 MB for 3 MB of one-letter lines).
        if peak > clean_peak + 8 * MB or peak - floor > 4 * SIZE:
            over[name] = round(peak / MB)
    assert not over, (f"peak MB of bad files, against {round(clean_peak / MB)} MB for a clean one "
                      f"and {round(floor / MB)} MB for a tiny one: {over}")


# -- the reject log is bounded, the counts are exact (issue 8, item 12) -------------------

def test_reject_log_keeps_the_first_rows_per_file_and_reason_and_counts_all(tmp_path, monkeypatch):
    monkeypatch.setattr(reject_log, "LOGGED", 3)
    # pieces of a few lines, so the first rows and the counts run across pieces
    monkeypatch.setattr(validate, "SLICE", 40)
    monkeypatch.setattr(validate, "RETRY_SLICE", 20)
    monkeypatch.setattr(validate, "EXACT_LINES", 2)
    write(tmp_path, "1/a.csv", CLICKS + "".join(f"{i},100,7\n" for i in range(1, 11)))
    b = [f"{i},100,7" for i in range(1, 7)] + [f"{i},999,7" for i in range(7, 11)]
    for at in (0, 3, 5, 8, 12):
        b.insert(at, "x")  # lines 2, 5, 7, 10 and 14 of b.csv
    write(tmp_path, "1/b.csv", CLICKS + "\n".join(b) + "\n")
    write(tmp_path, "1/c.csv", CONVS + "".join(f"{20 + i},{90 + i},1.0\n" for i in range(5)) + "30,1,2.0\n")
    res = compute(tmp_path, seed=1)
    got = [(r["file"], r["line"], r["reason"], r["detail"]) for r in res.rejects.iter_rows(named=True)]
    assert [g for g in got if g[1] is not None] == [
        ("1/b.csv", 2, "invalid", "expected 3 fields, got 1"),
        ("1/b.csv", 3, "duplicate_row", "click_id 1 already accepted"),
        ("1/b.csv", 4, "duplicate_row", "click_id 2 already accepted"),
        ("1/b.csv", 5, "invalid", "expected 3 fields, got 1"),
        ("1/b.csv", 6, "duplicate_row", "click_id 3 already accepted"),
        ("1/b.csv", 7, "invalid", "expected 3 fields, got 1"),
        ("1/b.csv", 12, "conflict", "click_id 7 already accepted with other values"),
        ("1/b.csv", 13, "conflict", "click_id 8 already accepted with other values"),
        ("1/b.csv", 15, "conflict", "click_id 9 already accepted with other values"),
        ("1/c.csv", 2, "orphan", "click_id 90 is not an accepted click of quarter 1"),
        ("1/c.csv", 3, "orphan", "click_id 91 is not an accepted click of quarter 1"),
        ("1/c.csv", 4, "orphan", "click_id 92 is not an accepted click of quarter 1"),
    ]
    # after each file's logged rows, one line per reason that had more
    assert [g for g in got if g[1] is None] == [
        ("1/b.csv", None, "conflict", "not logged: 1 more conflict rows of this file (4 in all, the first 3 logged)"),
        ("1/b.csv", None, "duplicate_row",
         "not logged: 3 more duplicate_row rows of this file (6 in all, the first 3 logged)"),
        ("1/b.csv", None, "invalid", "not logged: 2 more invalid rows of this file (5 in all, the first 3 logged)"),
        ("1/c.csv", None, "orphan", "not logged: 2 more orphan rows of this file (5 in all, the first 3 logged)"),
    ]
    assert got.index(("1/b.csv", 15, "conflict", "click_id 9 already accepted with other values")) < got.index(
        ("1/b.csv", None, "conflict", "not logged: 1 more conflict rows of this file (4 in all, the first 3 logged)"))
    row = res.summary.filter(pl.col("kind") == "clicks").row(0, named=True)
    assert (row["rows"], row["accepted"], row["duplicate_row"], row["conflict"], row["invalid"]) == (25, 10, 6, 4, 5)
    assert res.summary.filter(pl.col("kind") == "conversions")["orphan"].item() == 5
    assert res.invalid == 5 and res.rejected == 20
    [b_file] = [f for f in res.files if f.rel == "1/b.csv"]
    assert b_file.rejected_rows == {"duplicate_row": 6, "conflict": 4, "invalid": 5} and b_file.accepted == 0


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("last_eol", [True, False])
def test_line_numbers_run_on_across_pieces(tmp_path, monkeypatch, eol, last_eol):
    # a piece every four or five lines, retried on the fast path in parts of two
    monkeypatch.setattr(validate, "SLICE", 60)
    monkeypatch.setattr(validate, "RETRY_SLICE", 20)
    lines = [f"{i},100,7" for i in range(1, 21)]
    lines[11] = "bad"  # line 13
    lines[16] = "3,101,7"  # line 18: a conflict with line 4
    write(tmp_path, "1/c.csv", CLICKS.replace("\n", eol) + eol.join(lines) + (eol if last_eol else ""))
    write(tmp_path, "1/d.csv", CLICKS + "20,100,7\n")
    res = compute(tmp_path, seed=1)
    assert [(r["file"], r["line"], r["reason"], r["duplicate_of"]) for r in res.rejects.iter_rows(named=True)] == [
        ("1/c.csv", 13, "invalid", None), ("1/c.csv", 18, "conflict", "1/c.csv:4"),
        ("1/d.csv", 2, "duplicate_row", "1/c.csv:21")]


def test_reject_log_is_bounded_at_its_documented_size(tmp_path):
    n = reject_log.LOGGED + 250
    rows = "".join(f"{i},100,7\n" for i in range(n))
    write(tmp_path, "1/a.csv", CLICKS + rows)
    write(tmp_path, "1/b.csv", CLICKS + rows + "x\n" * n)
    res = compute(tmp_path, seed=1)
    assert reject_log.LOGGED == 1000  # README, "Loading"
    assert res.rejects.height == 2 * (reject_log.LOGGED + 1)
    assert res.rejects["detail"].str.starts_with("not logged: 250 more ").sum() == 2
    assert res.rejected == 2 * n and res.invalid == n


# -- every part of DATA_DIR is read, or rejected (issue 8, item 11) -----------------------

def folder_rejects(res):
    return [(r["file"], r["line"], r["reason"], r["detail"]) for r in res.rejects.iter_rows(named=True)]


def test_unreadable_folder_is_an_invalid_rejection(base):
    write(base, "3/clicks_3.csv", CLICKS + "1,100,7\n")
    locked = base / "3"
    locked.chmod(0)
    try:
        try:
            os.listdir(locked)
        except PermissionError:
            res = compute(base, seed=1)
        else:
            pytest.skip("permissions do not stop this user (root): see the simulated test below")
    finally:
        locked.chmod(0o755)
    assert folder_rejects(res) == [("3/", None, "invalid", "cannot read folder: Permission denied")]
    assert res.invalid == 1 and res.quarters == [1]
    row = res.summary.filter(pl.col("quarter") == 3).row(0, named=True)
    assert (row["files"], row["files_rejected"]) == (1, 1)


def test_folder_that_cannot_be_listed_is_an_invalid_rejection(base, monkeypatch):
    # As root, chmod 000 blocks nothing: make the listing itself fail, as it does for
    # another user (or on a mount gone stale).
    write(base, "3/deeper/clicks_3.csv", CLICKS + "1,100,7\n")
    real = os.scandir

    def scandir(path="."):
        if Path(path).name == "deeper":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    res = compute(base, seed=1)
    assert folder_rejects(res) == [("3/deeper/", None, "invalid", "cannot read folder: Permission denied")]
    assert res.invalid == 1
    assert [(f.rel, f.quarter, f.kind) for f in res.files if f.rejected] == [("3/deeper/", 3, None)]


def test_unreadable_data_dir_itself_is_an_invalid_rejection(tmp_path, monkeypatch):
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p=".": (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", os.fspath(p))) if Path(p) == tmp_path else real(p))
    res = compute(tmp_path, seed=1)
    assert folder_rejects(res) == [("./", None, "invalid", "cannot read folder: Permission denied")]
    assert res.accepted_rows == 0 and res.invalid == 1


def test_csv_that_is_not_a_readable_file_is_an_invalid_rejection(base):
    os.mkfifo(base / "1" / "pipe.csv")  # reading it would wait for a writer forever
    (base / "1" / "gone.csv").symlink_to(base / "nowhere.csv")
    (base / "1" / "folder.csv").mkdir()  # a folder with that name is a folder: walked, not read
    res = compute(base, seed=1)
    assert folder_rejects(res) == [
        ("1/gone.csv", None, "invalid", "cannot read: No such file or directory"),
        ("1/pipe.csv", None, "invalid", "cannot read: not a regular file"),
    ]


# -- no output ever holds a non-finite number (issue 8, item 15) --------------------------

def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-finite number in JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_revenues_whose_sum_would_overflow_never_reach_an_output(tmp_path, redis_proc, real_redis):
    data = tmp_path / "data"
    write(data, "1/clicks_1.csv", CLICKS + "1,100,7\n2,100,7\n3,101,7\n4,101,7\n")
    # two 1e308 on one banner summed to inf; the most a row may carry, twice, is fine
    write(data, "1/conversions_1.csv", CONVS + "10,1,1e308\n11,2,1e308\n12,3,1e15\n13,4,1e15\n")
    res = compute(data, seed=1)
    assert res.selections["revenue"].is_finite().all()
    assert [r["line"] for r in res.rejects.iter_rows(named=True)] == [2, 3]
    runner, log = CliRunner(), tmp_path / "rejects.jsonl"

    def run(*args):
        return runner.invoke(cli.main, [*args, "--redis-url", redis_proc.url], catch_exceptions=False)

    out = run("load", str(data), "--seed", "1", "--reject-log", str(log))
    assert out.exit_code == 3, out.output
    [record] = strict_json(run("show", "--json").output)
    assert [(b["banner_id"], b["revenue"]) for b in record["banners"]] == [(101, 2e15), (100, 0.0)]
    strict_json(run("status", "--json").output)
    for line in log.read_text().splitlines():
        strict_json(line)


# -- ids: exactly 0 .. 2^63-1 in every id column (issue 8, item 16) -----------------------

TOP = 2**63 - 1


@pytest.mark.parametrize("path", ["fast", "exact"])
def test_ids_load_up_to_2_63_minus_1(tmp_path, path):
    extra = "" if path == "fast" else "x\n"  # one bad line sends a file down the exact path
    write(tmp_path, "1/impressions.csv", IMPS + f"{TOP},{TOP}\n0,0\n" + extra)
    write(tmp_path, "1/clicks.csv", CLICKS + f"{TOP},{TOP},{TOP}\n0,0,0\n" + extra)
    write(tmp_path, "1/conversions.csv", CONVS + f"{TOP},{TOP},1.5\n0,0,0.5\n" + extra)
    write(tmp_path, "1/more_clicks.csv", CLICKS + f"{TOP},{TOP},{TOP}\n")  # a repeat, to the dedupe
    res = compute(tmp_path, seed=1)
    assert res.selections.select("campaign_id", "banner_id", "revenue", "clicks").rows() == [
        (0, 0, 0.5, 1), (TOP, TOP, 1.5, 1)]
    assert [(r["file"], r["reason"]) for r in res.rejects.iter_rows(named=True) if r["reason"] != "invalid"] == [
        ("1/more_clicks.csv", "duplicate_row")]


@pytest.mark.parametrize(
    "kind, columns",
    [("impressions", ["banner_id", "campaign_id"]), ("clicks", ["click_id", "banner_id", "campaign_id"]),
     ("conversions", ["conversion_id", "click_id"])],
)
def test_ids_from_2_63_up_are_invalid_with_the_range_in_the_detail(tmp_path, kind, columns):
    header = {"impressions": IMPS, "clicks": CLICKS, "conversions": CONVS}[kind]
    cols = header.strip().split(",")
    lines = []
    for col in columns:
        for big in (2**63, 10**19, 2**64):
            lines.append(",".join(str(big) if c == col else ("1.0" if c == "revenue" else "1") for c in cols))
    write(tmp_path, f"1/{kind}.csv", header + "\n".join(lines) + "\n")
    res = compute(tmp_path, seed=1)
    details = res.rejects.filter(pl.col("file") == f"1/{kind}.csv")["detail"].to_list()
    assert details == [f"{col} is out of range (0 to 2^63-1): '{big}'" for col in columns
                       for big in (2**63, 10**19, 2**64)]


# -- pieces are an implementation detail: any cut gives the same load --------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.conftest import examples  # noqa: E402

good_click = st.builds(lambda i, b, c: f"{i},{b},{c}", st.integers(0, 30), st.integers(100, 104), st.integers(1, 2))
click_line = st.one_of(  # mostly good lines, so that some pieces pass the fast path
    good_click, good_click, good_click,
    st.sampled_from(["", " ", "x", "1,2", "1,2,3,4", '"1",2,3', "-1,100,1", "1,100,", ",,", "1e3,100,1",
                     f"{2**63},100,1", "9" * 70_000]),
)


@settings(max_examples=examples(30), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=st.lists(click_line, max_size=40),
       sizes=st.tuples(st.integers(1, 200), st.integers(1, 64), st.integers(1, 4)),
       crlf=st.booleans(), last_eol=st.booleans())
def test_the_load_does_not_depend_on_where_pieces_are_cut(tmp_path_factory, lines, sizes, crlf, last_eol):
    root = tmp_path_factory.mktemp("cut")
    eol = "\r\n" if crlf else "\n"
    write(root, "1/a.csv", CLICKS.replace("\n", eol) + eol.join(lines) + (eol if last_eol and lines else ""))
    write(root, "1/b.csv", CONVS + "1,1,1.5\n2,2,0.5\n")
    whole = compute(root, seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(validate, "SLICE", sizes[0])
        mp.setattr(validate, "RETRY_SLICE", sizes[1])
        mp.setattr(validate, "EXACT_LINES", sizes[2])
        cut = compute(root, seed=1)
    assert cut.rejects.equals(whole.rejects)
    assert cut.selections.equals(whole.selections)
    assert cut.summary.equals(whole.summary)
