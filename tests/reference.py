"""A deliberately plain re-statement of SPEC §2, to check the polars rules against."""

from collections import defaultdict


def reference_selection(impressions, clicks, conversions):
    """impressions: [(q, c, b)], clicks: [(q, click_id, b, c)], conversions: [(q, conv_id, click_id, rev)].

    Returns {(q, c): (scenario, x, deterministic_part, n_random)} where
    deterministic_part is the list of banner ids SPEC fixes (revenue then clicks) and
    n_random how many random banners must follow.
    """
    banners = defaultdict(set)
    for q, c, b in impressions:
        banners[q, c].add(b)
    click_of = {}
    nclicks = defaultdict(int)
    for q, click_id, b, c in clicks:
        banners[q, c].add(b)
        click_of[q, click_id] = (c, b)
        nclicks[q, c, b] += 1
    revenue = defaultdict(float)
    converted = set()
    for q, _, click_id, rev in conversions:
        c, b = click_of[q, click_id]
        revenue[q, c, b] += rev
        converted.add((q, c, b))
    out = {}
    for (q, c), bs in banners.items():
        conv = [b for b in bs if (q, c, b) in converted]
        x = len(conv)
        by_rev = sorted(conv, key=lambda b: (-round(revenue[q, c, b], 9), -nclicks[q, c, b], b))
        clicked = sorted((b for b in bs if b not in conv and nclicks[q, c, b] > 0),
                         key=lambda b: (-nclicks[q, c, b], b))
        if x >= 10:
            out[q, c] = ("top_revenue_10", x, by_rev[:10], 0)
            continue
        if x >= 5:
            out[q, c] = ("top_revenue_x", x, by_rev, 0)
            continue
        want = min(5, len(bs))
        fixed = (by_rev + clicked)[:want]
        out[q, c] = ("revenue_then_clicks" if x else "top_clicks", x, fixed, want - len(fixed))
    return out
