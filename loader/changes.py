"""What a dry run compares with (the current version), and what publishing would change
against it: totals in one phrase, and the per-quarter lines `load --dry-run` prints."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass

import polars as pl

from banner_server.layout.catalog import read_selections
from banner_server.layout.keys import Keys

from .pipeline import LoadResult
from .publish import selection_changes


@dataclass(frozen=True)
class Baseline:
    """The current version, its selections and its seed (None: nothing published)."""

    version: str | None
    records: list[dict]
    seed: int | None

    @classmethod
    def read(cls, client, keys: Keys) -> "Baseline":
        """Raises the client's errors (redis.RedisError)."""
        version, records = read_selections(client, keys)
        seed = json.loads(client.hget(keys.meta(version), "seed") or "null") if version else None
        return cls(version, records, seed if isinstance(seed, int) and seed >= 0 else None)


@dataclass(frozen=True)
class Changes:
    total: str  # the whole in one phrase (the dry run's final line ends with it)
    header: str  # the line above `lines`
    lines: list[str]  # per quarter: its counts, then + added, - removed, ~ other banners


_WRAP = textwrap.TextWrapper(width=100, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False)


def dry_run_changes(result: LoadResult, against: Baseline) -> Changes:
    """What publishing `result` would change against `against`."""
    changes = selection_changes(against.records, result.selections)
    counts = dict(changes.group_by("change").len().iter_rows())
    versus = f"version {against.version}" if against.version else "nothing published yet"
    if not changes.height:
        total = f"no change against {versus}"
    else:
        total = (f"against {versus}: {counts.get('added', 0)} campaign(s) added, {counts.get('removed', 0)} "
                 f"removed, {counts.get('changed', 0)} with other banners (over all quarters)")
    header = f"changes against {versus}:" if against.version else "changes (nothing is published yet):"
    lines = []
    for q in sorted({r["quarter"] for r in against.records} | set(result.quarters)):
        of_q = changes.filter(pl.col("quarter") == q)
        if not of_q.height:
            lines.append(f"quarter {q}: no change")
            continue
        n = dict(of_q.group_by("change").len().iter_rows())
        lines.append(f"quarter {q}: {n.get('added', 0)} campaign(s) added, {n.get('removed', 0)} removed, "
                     f"{n.get('changed', 0)} with other banners")
        for change, sign in (("added", "+"), ("removed", "-")):
            ids = of_q.filter(pl.col("change") == change)["campaign_id"].to_list()
            if ids:
                lines.extend(_WRAP.wrap(f"{sign} campaign(s) {', '.join(map(str, ids))}"))
        for c, added, removed in of_q.filter(pl.col("change") == "changed").select(
                "campaign_id", "banners_added", "banners_removed").iter_rows():
            banners = [f"+{b}" for b in added] + [f"-{b}" for b in removed]
            lines.extend(_WRAP.wrap(f"~ campaign {c}: {' '.join(banners)}"))
    return Changes(total, header, lines)
