"""The selections of a version in pieces (format 2): how the publisher cuts them
(split_records, the manifest), the key of each piece, and reading them back: the
compact campaign -> banner ids of a quarter (QuarterIds), one piece's records, every
record of a version in either format, the dashboard's Catalog read a piece at a time
(PiecedCatalog), and every key a version may have, for its removal."""

from __future__ import annotations

import json
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Sequence

from .keys import Keys

# -- the selections in pieces (format 2) ---------------------------------------------
#
# A version's selections were one JSON string (212 MB on the 100k-campaign set): one
# SET blocked Redis for seconds (the load lost its lease renewal twice and published
# nothing) and every worker fetched and parsed all of it (1.15 GB of RSS).  Since
# format 2 the `selections` key holds a small manifest, and each quarter's campaigns,
# in id order, are cut into pieces of SNAPSHOT_CAMPAIGNS campaigns, each written twice:
#
#   v:{ver}:q:{q}:part:{i}  the `show --json` records of the piece, one JSON object a line
#                           (show, and a campaign's dashboard page: one line parsed): ~130 KB for 250 campaigns of 10 banners
#   v:{ver}:q:{q}:ids:{i}   what degraded serving and the dashboard's list need, compact:
#                           campaign ids, scenario, X and banner ids as little-endian
#                           arrays (~19 KB a piece: a quarter of the 100k set is ~7.5 MB)
#
# The manifest: {"format": 2, "scenarios": [...], "quarters": {"1": {"firsts": [the
# first campaign of each piece], "campaigns": n}}, "piece": SNAPSHOT_CAMPAIGNS}.

SNAPSHOT_FORMAT = 2
# Campaigns a piece: a campaign's dashboard page reads its piece's records (~130 KB
# with 10 banners each: ~2 ms to parse; 1,000 a piece made it ~10 ms), a page of the
# list one compact piece (~19 KB).
SNAPSHOT_CAMPAIGNS = 250


def part_key(keys: Keys, ver: str, quarter: int, piece: int) -> str:
    return f"{keys.version(ver)}q:{quarter}:part:{piece}"


def ids_key(keys: Keys, ver: str, quarter: int, piece: int) -> str:
    return f"{keys.version(ver)}q:{quarter}:ids:{piece}"


def _native(arr: array) -> array:
    """Pieces are little-endian whatever the host."""
    if sys.byteorder == "big":
        arr.byteswap()
    return arr


class QuarterIds:
    """One quarter's campaign -> banner ids, in four flat arrays (no Python object per
    campaign or banner): ~9 bytes a banner.  Reads like the dict it replaces:
    `q[c]`, `q.get(c)`, `c in q`, iteration over campaign ids in order, len."""

    __slots__ = ("campaigns", "scen", "xs", "offs", "banners", "scenarios")

    def __init__(self, scenarios: list[str]):
        self.scenarios = list(scenarios)
        self.campaigns, self.scen, self.xs = array("q"), array("b"), array("i")
        self.offs, self.banners = array("q", [0]), array("q")

    @classmethod
    def from_rows(cls, rows, scenarios: list[str]) -> "QuarterIds":
        """rows: (campaign, scenario, x, banner ids), campaigns ascending."""
        out = cls(scenarios)
        code = {s: i for i, s in enumerate(out.scenarios)}
        for campaign, scenario, x, ids in rows:
            if scenario not in code:
                code[scenario] = len(out.scenarios)
                out.scenarios.append(scenario)
            out.campaigns.append(campaign)
            out.scen.append(code[scenario])
            out.xs.append(int(x or 0))
            out.banners.extend(ids)
            out.offs.append(len(out.banners))
        return out

    @classmethod
    def from_records(cls, records: list[dict], quarter: int) -> "QuarterIds":
        rows = sorted((r["campaign_id"], r["scenario"], r["x"], [b["banner_id"] for b in r["banners"]])
                      for r in records if r["quarter"] == quarter)
        return cls.from_rows(rows, [])

    def encode(self) -> bytes:
        head = struct.pack("<II", len(self.campaigns), len(self.banners))
        return head + b"".join(_native(array(a.typecode, a)).tobytes()
                               for a in (self.campaigns, self.scen, self.xs, self.offs, self.banners))

    def extend(self, raw: bytes) -> None:
        """Appends a piece (encoded by `encode`, scenarios coded by the manifest's list)."""
        n, m = struct.unpack_from("<II", raw)
        pos = 8
        parts = []
        for code, count in (("q", n), ("b", n), ("i", n), ("q", n + 1), ("q", m)):
            arr = array(code)
            size = arr.itemsize * count
            arr.frombytes(raw[pos:pos + size])
            parts.append(_native(arr))
            pos += size
        campaigns, scen, xs, offs, banners = parts
        base = len(self.banners)
        self.campaigns.extend(campaigns)
        self.scen.extend(scen)
        self.xs.extend(xs)
        self.offs.extend(base + o for o in offs[1:])
        self.banners.extend(banners)

    def _index(self, campaign: int) -> int | None:
        i = bisect_left(self.campaigns, campaign)
        return i if i < len(self.campaigns) and self.campaigns[i] == campaign else None

    def get(self, campaign: int, default=None):
        i = self._index(campaign)
        return default if i is None else tuple(self.banners[self.offs[i]:self.offs[i + 1]])

    def __getitem__(self, campaign: int) -> tuple[int, ...]:
        found = self.get(campaign)
        if found is None:
            raise KeyError(campaign)
        return found

    def __contains__(self, campaign) -> bool:
        return self._index(campaign) is not None

    def __iter__(self):
        return iter(self.campaigns)

    def __len__(self) -> int:
        return len(self.campaigns)

    def row(self, i: int) -> tuple[int, str, int, int]:
        """(campaign, scenario, X, how many banners) of the i-th campaign."""
        return (self.campaigns[i], self.scenarios[self.scen[i]], self.xs[i], self.offs[i + 1] - self.offs[i])

    def nbytes(self) -> int:
        return sum(a.itemsize * len(a) for a in (self.campaigns, self.scen, self.xs, self.offs, self.banners))


class Listing(Sequence):
    """The dashboard's rows of a quarter, (campaign, scenario, X, banners), made when
    read: a page of 1,000 never builds 100,000 tuples."""

    def __init__(self, ids: QuarterIds, positions=None):
        self.ids, self.positions = ids, positions

    def __len__(self) -> int:
        return len(self.ids) if self.positions is None else len(self.positions)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        return self.ids.row(i if self.positions is None else self.positions[i])


def manifest_of(raw) -> dict | None:
    """The manifest of a format-2 version, None when `raw` is the single JSON array of
    a version published before (format 1)."""
    if raw is None or raw.lstrip()[:1] == b"[" or (isinstance(raw, str) and raw.lstrip()[:1] == "["):
        return None
    return json.loads(raw)


def pieces(manifest: dict) -> list[tuple[int, int]]:
    """(quarter, piece) of every piece of a format-2 version, in order."""
    return [(int(q), i) for q, info in sorted(manifest["quarters"].items(), key=lambda kv: int(kv[0]))
            for i in range(len(info["firsts"]))]


def piece_of(manifest: dict, quarter: int, campaign: int) -> int | None:
    info = manifest["quarters"].get(str(quarter))
    if not info or not info["firsts"]:
        return None
    return max(bisect_right(info["firsts"], campaign) - 1, 0)


def _get_many(r, names: list[str], batch: int = 16) -> list:
    """GETs in pipelines of `batch` (16 pieces: ~300 KB of ids, ~2 MB of records):
    no reply big enough to hold Redis or the client for long."""
    out = []
    for i in range(0, len(names), batch):
        pipe = r.pipeline(transaction=False)
        for name in names[i:i + batch]:
            pipe.get(name)
        out.extend(pipe.execute())
    return out


def read_quarter_ids(r, keys: Keys, ver: str, manifest: dict, quarter: int) -> QuarterIds | None:
    """The compact snapshot of one quarter of a format-2 version (None: no such quarter,
    or a piece is missing: the version is being removed)."""
    info = manifest["quarters"].get(str(quarter))
    if info is None:
        return None
    out = QuarterIds(manifest.get("scenarios", []))
    for raw in _get_many(r, [ids_key(keys, ver, quarter, i) for i in range(len(info["firsts"]))]):
        if raw is None:
            return None
        out.extend(raw)
    return out


def part_records(raw) -> list[dict]:
    """The records of a piece: one JSON object a line, in campaign order."""
    return [json.loads(line) for line in raw.split(b"\n")] if raw else []


def read_part(r, keys: Keys, ver: str, quarter: int, piece: int) -> list[dict]:
    return part_records(r.get(part_key(keys, ver, quarter, piece)))


def read_records(r, keys: Keys, ver: str, raw) -> list[dict]:
    """Every `show --json` record of `ver` from its `selections` value (either format)."""
    manifest = manifest_of(raw)
    if manifest is None:
        return json.loads(raw) if raw else []
    out: list[dict] = []
    names = [part_key(keys, ver, q, i) for q, i in pieces(manifest)]
    for part in _get_many(r, names, batch=4):
        if part:
            out.extend(part_records(part))
    return out


def version_key_names(r, keys: Keys, ver: str) -> list[str]:
    """Every key a version may have, for its removal: from its manifest and compact
    pieces (never the records: 100k campaigns are ~36 MB of ids, not 212 MB of JSON),
    or from the single JSON of a format-1 version.  Pieces not written yet (a load
    killed half-way) had no selection keys either: they are written first."""
    raw = r.get(keys.selections(ver))
    manifest = manifest_of(raw)
    if manifest is None:
        return keys.version_keys(ver, json.loads(raw) if raw else [])
    out = keys.version_keys(ver, [])
    for q, info in manifest["quarters"].items():
        q = int(q)
        names = [ids_key(keys, ver, q, i) for i in range(len(info["firsts"]))]
        out.extend(names)
        out.extend(part_key(keys, ver, q, i) for i in range(len(info["firsts"])))
        for raw_ids in _get_many(r, names):
            if raw_ids is None:
                continue
            piece = QuarterIds([])
            piece.extend(raw_ids)
            for c in piece.campaigns:
                out.append(keys.selection_zset(ver, q, c))
                out.extend(keys.selection_set(ver, q, c, g) for g in range(keys.groups))
    return out


class PiecedListing(Sequence):
    """A quarter's rows read a piece at a time (the pieces are consecutive runs of
    `piece` campaigns): a page of the dashboard's list reads one or two compact pieces,
    not the quarter (~7.5 MB of the 100k set, ~100 ms of the worker each time)."""

    def __init__(self, catalog: "PiecedCatalog", quarter: int):
        self.catalog, self.quarter = catalog, quarter
        info = catalog.manifest["quarters"][str(quarter)]
        self.size, self.piece = info["campaigns"], catalog.manifest.get("piece", 1000)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < self.size:
            raise IndexError(i)
        ids = self.catalog.ids_piece(self.quarter, i // self.piece)
        return ids.row(i % self.piece)

    def find(self, campaign: int) -> list:
        piece = piece_of(self.catalog.manifest, self.quarter, campaign)
        ids = self.catalog.ids_piece(self.quarter, piece) if piece is not None else None
        i = ids._index(campaign) if ids is not None else None
        return [] if i is None else [ids.row(i)]


class PiecedCatalog:
    """The dashboard's Catalog of a format-2 version: the list from the compact ids the
    worker holds (or fetches: `quarter_ids`), one campaign's records from its piece (the
    last PARTS_KEPT pieces kept: ~2 MB)."""

    PARTS_KEPT = 8

    def __init__(self, r, keys: Keys, ver: str, manifest: dict, quarter_ids, held=None):
        self.r, self.keys, self.ver, self.manifest = r, keys, ver, manifest
        self.quarter_ids = quarter_ids
        if held is not None:
            self.held = held
        self._parts: OrderedDict[tuple[int, int], dict[int, dict]] = OrderedDict()

    def ids_piece(self, quarter: int, piece: int) -> QuarterIds:
        held = self.held(quarter)
        if held is not None:  # the worker holds the quarter: a view, nothing read
            return _PieceView(held, piece * self.manifest.get("piece", 1000))
        key = ("ids", quarter, piece)
        found = self._parts.get(key)
        if found is None:
            found = QuarterIds(self.manifest.get("scenarios", []))
            raw = self.r.get(ids_key(self.keys, self.ver, quarter, piece))
            if raw:
                found.extend(raw)
            self._keep(key, found)
        return found

    def held(self, quarter: int) -> QuarterIds | None:
        return None

    def _keep(self, key, value) -> None:
        self._parts[key] = value
        if len(self._parts) > self.PARTS_KEPT:
            self._parts.popitem(last=False)

    def listing(self, quarter: int, scenario: str | None = None) -> Sequence:
        if str(quarter) not in self.manifest["quarters"]:
            return []
        if not scenario:
            return PiecedListing(self, quarter)
        ids = self.quarter_ids(quarter)  # a filter reads the quarter (cached per page and minute)
        if ids is None:
            return []
        if scenario not in ids.scenarios:
            return []
        code = ids.scenarios.index(scenario)
        return Listing(ids, array("q", (i for i, s in enumerate(ids.scen) if s == code)))

    def selection(self, quarter: int, campaign: int) -> dict | None:
        """One campaign's record: its line of its piece, found by the compact ids (one
        small json.loads; the whole piece of 1,000 campaigns took ~10 ms to parse)."""
        piece = piece_of(self.manifest, quarter, campaign)
        if piece is None:
            return None
        i = self.ids_piece(quarter, piece)._index(campaign)
        if i is None:
            return None
        key = (quarter, piece)
        lines = self._parts.get(key)
        if lines is None:
            raw = self.r.get(part_key(self.keys, self.ver, quarter, piece))
            lines = raw.split(b"\n") if raw else []
            self._keep(key, lines)
        else:
            self._parts.move_to_end(key)
        return json.loads(lines[i]) if i < len(lines) else None


class _PieceView:
    """Piece-relative rows of a held quarter (PiecedListing's indexes)."""

    def __init__(self, ids: QuarterIds, start: int):
        self.ids, self.start = ids, start

    def row(self, i: int):
        return self.ids.row(self.start + i)

    def _index(self, campaign: int):
        i = self.ids._index(campaign)
        return None if i is None else i - self.start


def split_records(records: list[dict]):
    """(manifest, the pieces [(quarter, piece, records JSON, compact ids)] as a generator:
    one piece in memory at a time) of `records`: what the publisher writes (format 2)."""
    by_quarter: dict[int, list[dict]] = {}
    for rec in records:
        by_quarter.setdefault(rec["quarter"], []).append(rec)
    for recs in by_quarter.values():
        recs.sort(key=lambda rec: rec["campaign_id"])
    scenarios = sorted({rec["scenario"] for rec in records})
    manifest = {"format": SNAPSHOT_FORMAT, "scenarios": scenarios, "quarters": {
        str(q): {"firsts": [rec["campaign_id"] for rec in by_quarter[q][::SNAPSHOT_CAMPAIGNS]],
                 "campaigns": len(by_quarter[q])} for q in sorted(by_quarter)}, "piece": SNAPSHOT_CAMPAIGNS}
    size = SNAPSHOT_CAMPAIGNS

    def parts():
        for q in sorted(by_quarter):
            recs = by_quarter[q]
            for i in range(0, len(recs), size):
                chunk = recs[i:i + size]
                ids = QuarterIds.from_rows(((r["campaign_id"], r["scenario"], r["x"],
                                             [b["banner_id"] for b in r["banners"]]) for r in chunk), scenarios)
                yield q, i // size, b"\n".join(json.dumps(r, separators=(",", ":")).encode() for r in chunk), \
                    ids.encode()

    return manifest, parts()
