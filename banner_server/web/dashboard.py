"""GET /dashboard: what is served and why, for people (HTML) and machines (JSON).

Per quarter (the current one first) and campaign: the scenario, X, and the
selected banners with their pictures, revenue and clicks (drawn as <meter> bars:
no script, no inline style, so the strict CSP holds), the rule that picked each
(`source`) and how often each was served since the server started, summed over
every worker from the metrics files.
"""

from __future__ import annotations

import html
from typing import Callable

import falcon

from .html import HTML_HEADERS, page, wants_json
from .images import ImageDir
from .metrics import Metrics
from .store import SelectionStore


def dashboard_data(store: SelectionStore, metrics: Metrics, images: ImageDir, current: int) -> dict:
    store.ensure_snapshot()
    served = metrics.served()
    quarters: dict[int, list[dict]] = {}
    for rec in store.records:
        q, c = rec["quarter"], rec["campaign_id"]
        quarters.setdefault(q, []).append({
            "campaign_id": c,
            "name": store.campaign_name(c),
            "scenario": rec["scenario"],
            "x": rec["x"],
            "banners": [
                {**b, "served": served.get((q, c, b["banner_id"]), 0),
                 "image_url": f"/banners/{b['banner_id']}.{'png' if images.has(b['banner_id']) else 'svg'}"}
                for b in rec["banners"]
            ],
        })
    order = sorted(quarters, key=lambda q: (q != current, q))
    return {
        "version": store.version,
        "current_quarter": current,
        "quarters": [{"quarter": q, "current": q == current,
                      "campaigns": sorted(quarters[q], key=lambda c: c["campaign_id"])} for q in order],
    }


def _meter(value: float, top: float, label: str) -> str:
    # <meter> draws the bar natively: nothing for the CSP to allow.
    return (f'<meter min="0" max="{top:g}" value="{value:g}" title="{html.escape(label)}"></meter>'
            f'<span class="num">{html.escape(label)}</span>')


def _row(b: dict, top_rev: float, top_clicks: float) -> str:
    revenue = f"{b['revenue']:.2f}"
    return (f'<tr><td><img src="{b["image_url"]}" width="72" height="60" loading="lazy" '
            f'alt="Banner {b["banner_id"]}"></td><td>{b["banner_id"]}</td>'
            f'<td>{_meter(b["revenue"], top_rev, revenue)}</td>'
            f'<td>{_meter(b["clicks"], top_clicks, str(b["clicks"]))}</td>'
            f'<td class="rule">{html.escape(b["source"])}</td><td class="num">{b["served"]}</td></tr>')


def render_html(data: dict) -> str:
    parts = [f'<h1>Dashboard</h1><p class="meta">Version {html.escape(str(data["version"] or "none"))} · '
             f'quarter {data["current_quarter"]} of the hour now · served counts since the server started</p>']
    if not data["quarters"]:
        parts.append("<p>Nothing is published yet: run <code>banners load DATA_DIR</code>.</p>")
    nav = " · ".join(f'<a href="#q{q["quarter"]}">Quarter {q["quarter"]}{" (now)" if q["current"] else ""}</a>'
                     for q in data["quarters"])
    if nav:
        parts.append(f"<nav>{nav}</nav>")
    for q in data["quarters"]:
        parts.append(f'<h2 id="q{q["quarter"]}">Quarter {q["quarter"]}{" — now" if q["current"] else ""}</h2>')
        for c in q["campaigns"]:
            top_rev = max((b["revenue"] for b in c["banners"]), default=0) or 1
            top_clicks = max((b["clicks"] for b in c["banners"]), default=0) or 1
            rows = "".join(_row(b, top_rev, top_clicks) for b in c["banners"])
            parts.append(
                f'<section class="campaign"><h3><a href="/campaigns/{c["campaign_id"]}">Campaign {c["campaign_id"]}'
                f'{" — " + html.escape(c["name"]) if c["name"] else ""}</a>'
                f' <span class="tag">{html.escape(c["scenario"])}</span> <span class="meta">X = {c["x"]}</span></h3>'
                f'<table><thead><tr><th>Picture</th><th>Banner</th><th>Revenue</th><th>Clicks</th>'
                f'<th class="rule">Rule</th><th>Served</th></tr></thead><tbody>{rows}</tbody></table></section>')
    return page("Dashboard", "".join(parts))


class DashboardResource:
    def __init__(self, store: SelectionStore, quarter: Callable[[], int], metrics: Metrics, images: ImageDir):
        self.store = store
        self.quarter = quarter
        self.metrics = metrics
        self.images = images

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = dashboard_data(self.store, self.metrics, self.images, self.quarter())
        resp.cache_control = ["no-store"]
        resp.vary = ["Accept"]
        if wants_json(req):
            resp.media = data
            return
        resp.content_type = falcon.MEDIA_HTML
        resp.set_headers(HTML_HEADERS)
        resp.text = render_html(data)

    on_head = on_get
