"""Fuzzing: random CSV input never crashes `load`, and junk never changes what the
valid part selects; random HTTP input never gets a 500 or a traceback."""

import string

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader.pipeline import compute
from tests.conftest import examples
from tests.serving import STANDARD, make_client, publish_rows

HEADERS = {
    "impressions": "banner_id,campaign_id",
    "clicks": "click_id,banner_id,campaign_id",
    "conversions": "conversion_id,click_id,revenue",
}

# Lines that can never be a valid row of any kind: a letter in every field, or a
# field count no kind has.
junk_line = st.one_of(
    st.text(alphabet=string.ascii_letters + " ;:|", min_size=1, max_size=40),
    st.lists(st.integers(0, 999), min_size=4, max_size=8).map(lambda xs: ",".join(map(str, xs))),
    st.builds(lambda n, f: f"{n},{f}", st.integers(), st.text(alphabet="xyz!?", min_size=1, max_size=10_000)),
    st.just("-1,-2,-3"),
    st.just("1,2,NaN"),
)


@st.composite
def folders(draw):
    """{relative path: bytes} of valid rows, and the same with junk mixed in."""
    clean, dirty, junk_lines = {}, {}, {}
    click_id = 0
    conv_id = 0
    for q in draw(st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True)):
        imps = draw(st.lists(st.tuples(st.integers(100, 115), st.integers(1, 3)), max_size=30))
        clicks = []
        for b, c in draw(st.lists(st.tuples(st.integers(100, 115), st.integers(1, 3)), max_size=30)):
            click_id += 1
            clicks.append((click_id, b, c))
        convs = []
        if clicks:
            for cl, rev in draw(st.lists(st.tuples(st.sampled_from(clicks), st.sampled_from([0, 0.5, 1, 2.25])),
                                         max_size=15)):
                conv_id += 1
                convs.append((conv_id, cl[0], rev))
        for kind, rows in (("impressions", imps), ("clicks", clicks), ("conversions", convs)):
            # Column order turns with the quarter, so no two files have the same bytes
            # (equal files are rejected as duplicate_file, by design).
            cols = HEADERS[kind].split(",")
            turn = q % len(cols)
            order = cols[turn:] + cols[:turn]
            lines = [",".join(str(r[cols.index(c)]) for c in order) for r in rows]
            name = f"{q}/{kind}.csv"
            header = ",".join(order) + " " * q  # spaces around names are allowed
            clean[name] = (header + "\n" + "\n".join(lines) + "\n").encode()
            mixed = [(line, False) for line in lines]
            for junk in draw(st.lists(junk_line, max_size=5)):
                mixed.insert(draw(st.integers(0, len(mixed))), (junk, True))
            dirty[name] = (header + "\n" + "\n".join(line for line, _ in mixed) + "\n").encode()
            # where the junk went: line numbers (the header is line 1); blank junk is skipped
            junk_lines[name] = {i + 2 for i, (line, is_junk) in enumerate(mixed) if is_junk and line.strip()}
    # whole files that must be rejected, never read as data
    for i, blob in enumerate(draw(st.lists(st.binary(min_size=1, max_size=300), max_size=3))):
        dirty[f"{1 + i % 4}/zz_random_{i}.csv"] = b"\xff" + blob
    for i, header in enumerate(draw(st.lists(st.text(alphabet="abc_,", min_size=1, max_size=30), max_size=2))):
        dirty[f"{1 + i % 4}/zz_header_{i}.csv"] = (header + "\n1,2,3\n").encode()
    return clean, dirty, junk_lines


def write(root, files):
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(folders(), st.integers(0, 2**31))
def test_junk_never_changes_what_the_valid_part_selects(tmp_path_factory, data, seed):
    clean, dirty, junk_lines = data
    a, b = tmp_path_factory.mktemp("clean"), tmp_path_factory.mktemp("dirty")
    write(a, clean)
    write(b, dirty)
    want, got = compute(a, seed), compute(b, seed)
    assert got.selections.equals(want.selections)
    # exactly the junk lines are rejected, each as invalid with its own line number,
    # and every other line of a data file is accepted
    rows = got.rejects.filter(pl.col("line").is_not_null())
    assert set(rows["reason"].to_list()) <= {"invalid"}
    logged = set(zip(rows["file"].to_list(), rows["line"].to_list()))
    assert logged == {(name, line) for name, lines in junk_lines.items() for line in lines}
    for f in got.files:
        if f.rel in junk_lines:
            assert f.rejected is None and f.rejected_rows.get("invalid", 0) == len(junk_lines[f.rel])
            assert f.accepted == next(g.accepted for g in want.files if g.rel == f.rel)
        else:  # random bytes and unknown headers: rejected whole
            assert f.rejected in ("invalid", "duplicate_file")


@settings(max_examples=examples(40), deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_file_never_crashes(tmp_path_factory, blob):
    root = tmp_path_factory.mktemp("bytes")
    (root / "1").mkdir()
    (root / "1" / "clicks.csv").write_bytes(b"click_id,banner_id,campaign_id\n" + blob)
    (root / "1" / "other.csv").write_bytes(blob)
    res = compute(root, seed=1)
    clicks = next(f for f in res.files if f.rel == "1/clicks.csv")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        assert clicks.rejected is None  # its header is valid: only its rows can be rejected
    rejected_lines = res.rejects.filter(pl.col("file") == "1/clicks.csv")["line"].drop_nulls().to_list()
    assert len(rejected_lines) == len(set(rejected_lines))  # one rejection per line at most
    if clicks.rejected is None and text is not None:
        assert all(2 <= line <= text.count("\n") + text.count("\r") + 2 for line in rejected_lines)


# -- HTTP ---------------------------------------------------------------------------------

paths = st.one_of(
    st.text(alphabet=string.printable, max_size=60).map(lambda s: "/" + s.lstrip("/")),
    st.builds(lambda s: "/campaigns/" + s, st.text(max_size=40)),
    st.builds(lambda s: "/banners/" + s, st.text(max_size=40)),
    st.sampled_from(["/", "/campaigns/7", "/campaign/7", "/banners/7.svg", "/banners/7.png", "/readyz",
                     "/healthz", "/metrics", "/campaigns/", "/campaigns//7", "/campaigns/7/x"]),
)
header_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]), path=paths,
       query=st.text(max_size=80), accept=header_value,
       cookie=st.one_of(header_value, st.text(max_size=20).map(lambda s: "visitor_id=" + s)))
def test_http_never_500(fuzz_client, method, path, query, accept, cookie):
    try:
        path.encode("ascii")
    except UnicodeEncodeError:
        path = "/" + path.encode("utf-8").hex()
    path = path.replace("?", "%3F").replace("#", "%23")  # the query goes in query_string
    query = query.lstrip("?")
    res = fuzz_client.simulate_request(method, path, query_string=query,
                                       headers={"Accept": accept, "Cookie": cookie, "User-Agent": "fuzz"})
    assert res.status_code < 500, (method, path, res.status_code, res.text[:300])
    assert "Traceback" not in res.text


def test_thousands_of_cookies_and_huge_ones(fuzz_client):
    jar = "; ".join(f"c{i}=v{i}" for i in range(3000))
    for cookie in [jar, "visitor_id=" + "x" * 100_000, "visitor_id=\u00e9\u00e8" * 50, jar + "; visitor_id=" + "a" * 22]:
        res = fuzz_client.simulate_get("/campaigns/7", headers={"Cookie": cookie})
        assert res.status_code == 200


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def fuzz_client():
    import fakeredis

    r = fakeredis.FakeRedis()
    publish_rows(r, STANDARD)
    return make_client(r)[0]
