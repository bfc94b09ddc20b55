"""The operators' dashboard (auth.py: the admin credential): what is served, why, and
how it does, from the recorded events (they survive restarts and add up over hosts).

GET /dashboard                     every campaign of one quarter (the current one by
                                   default), paged, filterable by campaign id or name
                                   (`q`), quarter and scenario; the totals and the last
                                   48 hours as SVG charts on top
GET /dashboard/campaigns/{id}      one campaign: each quarter's selection (the current
                                   quarter first), the rule of each banner in words, and
                                   per banner impressions, clicks, conversions, CTR,
                                   conversion rate, revenue and eCPM; its last 48 hours

Both answer JSON to `Accept: application/json` or `?format=json`.  No page grows with
the catalog: PAGE_SIZE campaigns a page.  Charts are inline SVG (charts.py: no script,
no inline style: the strict CSP holds).  The numbers come from business.py.

Cost: the events are read by business.py's `RecordedEvents` at most once a minute per
worker, past hours once (they no longer change); each page is rendered at most once per
version, minute and query per worker (`PageCache`).  Frequency-capped requests are
counted per server in /metrics only (`frequency_capped` shows "—").
"""

from __future__ import annotations

import datetime as dt
import html
import time
from collections import OrderedDict
from decimal import Decimal
from urllib.parse import urlencode

import falcon

from ..ids import parse_id
from .business import HOURS, REFRESH, Business, Counts, RecordedEvents
from .charts import hourly_charts
from .html import HTML_HEADERS, page, wants_json

PAGE_SIZE = 50
RENDER_SHARE = 0.25  # of a worker's time at most spent rendering operator pages, over time
RENDER_BURST = 0.5  # seconds of rendering a worker may owe before it refuses (503) uncached pages

SCENARIO_WORDS = {
    "top_revenue_10": "10 or more banners converted: the 10 with the most revenue are shown",
    "top_revenue_x": "X banners converted (5 to 9): those X are shown, by revenue",
    "revenue_then_clicks": "1 to 4 banners converted: those, then the most-clicked banners up to 5",
    "top_clicks": "no banner converted: the 5 most-clicked (random ones when fewer were clicked)",
}
RULE_WORDS = {
    "revenue": "converted (ranked by revenue)",
    "clicks": "clicked (ranked by clicks)",
    "random": "random pick (no click yet)",
}


# -- formatting -------------------------------------------------------------------------
def _pct(v) -> str:
    return "—" if v is None else f"{v * 100:.2f} %"


def _money(v) -> str:
    return "—" if v is None else f"{v:,.2f}"


def _metrics_cells(d: dict) -> str:
    return (f'<td class="num">{d["impressions"]:,}</td><td class="num">{d["clicks"]:,}</td>'
            f'<td class="num">{d["conversions"]:,}</td><td class="num">{_pct(d["ctr"])}</td>'
            f'<td class="num">{_pct(d["conversion_rate"])}</td><td class="num">{_money(d["revenue"])}</td>'
            f'<td class="num">{_money(d["ecpm"])}</td>')


METRIC_HEADS = ('<th>Impr.</th><th>Clicks</th><th>Conv.</th><th>CTR</th><th>Conv. rate</th>'
                '<th>Revenue</th><th>eCPM</th>')


def _legend() -> str:
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in SCENARIO_WORDS.items())
    rules = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in RULE_WORDS.items())
    return (f'<details class="legend"><summary>Legend: scenarios and rules</summary><dl>{items}</dl>'
            f'<dl>{rules}</dl><p class="meta">X: the number of banners of the campaign with at least one '
            f'conversion in the quarter\'s data. CTR = clicks / impressions; conversion rate = conversions / '
            f'clicks; eCPM = revenue per 1,000 impressions. Events of the last {HOURS} hours.</p></details>')


def _quality_cells(business: Business) -> str:
    quality = business.traffic_quality
    capped = business.frequency_capped
    valid = "—" if quality is None else f'{quality.get("valid", 0):,}'
    invalid = "—" if quality is None else ", ".join(f"{k}: {v:,}" for k, v in quality.get("invalid", {}).items()) or "0"
    clicks = "—" if quality is None else ", ".join(
        f"{k}: {v:,}" for k, v in quality.get("invalid_clicks", {}).items()) or "0"
    return (f'<p class="meta">Valid impressions: {valid} · invalid impressions by reason: {invalid} · '
            f'invalid clicks by reason: {clicks} · '
            f'frequency-capped requests: {"—" if capped is None else f"{capped:,}"}</p>')


# -- the pages --------------------------------------------------------------------------
class PageCache:
    """Rendered answers per (version, minute, query): at most one rendering of a page per
    worker and minute, whatever the number of operators; bounded."""

    def __init__(self, size: int = 64):
        self.size = size
        self._items: OrderedDict = OrderedDict()

    def get(self, key, make):
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            return found
        value = make()
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


class DashboardResource:
    def __init__(self, services, monotonic=time.monotonic):
        self.store = services.store
        self.quarter = services.quarter
        self.images = services.images
        self.admin = services.admin
        clock = services.clock or (lambda: dt.datetime.fromtimestamp(services.now()).astimezone())
        self.business = RecordedEvents(services.events, clock, monotonic)
        self.monotonic = monotonic
        self.cache = PageCache()
        self._render_debt = (0.0, self.monotonic())  # (seconds of rendering owed, as of)

    def _key(self, *parts):
        return (self.store.version, int(self.monotonic() // REFRESH), *parts)

    # -- the list ------------------------------------------------------------------------
    def list_data(self, quarter: int, query: str, scenario: str, page_no: int) -> dict:
        current = self.quarter()
        business = self.business()
        catalog = self.store.catalog()
        campaigns = catalog.listing(quarter, scenario or None)
        if query:
            wanted = parse_id(query.strip())
            if wanted is not None:
                find = getattr(campaigns, "find", None)  # a pieced list: one piece read, not all
                campaigns = find(wanted) if find else [row for row in campaigns if row[0] == wanted]
            else:
                campaigns = self.store.search_names(campaigns, query.strip())
        totals_by_campaign = business.campaign_totals(quarter)
        total = Counts()
        for counts in totals_by_campaign.values():
            total.add(counts)
        pages = max(1, -(-len(campaigns) // PAGE_SIZE))
        page_no = min(max(page_no, 1), pages)
        rows = []
        for campaign, scen, x, n in campaigns[(page_no - 1) * PAGE_SIZE:page_no * PAGE_SIZE]:
            rows.append({"campaign_id": campaign, "name": self.store.campaign_name(campaign), "scenario": scen,
                         "scenario_words": SCENARIO_WORDS.get(scen, scen), "x": x, "banners": n,
                         **totals_by_campaign.get(campaign, Counts()).as_dict(),
                         "url": f"/dashboard/campaigns/{campaign}"})
        series = business.per_hour(quarter=None)
        return {
            "version": self.store.version, "current_quarter": current, "quarter": quarter,
            "quarters": list(self.store.quarters), "query": query, "scenario": scenario,
            "page": page_no, "pages": pages, "matching": len(campaigns), "campaigns": rows,
            "totals": total.as_dict(),
            "hours": business.hours,
            "per_hour": [c.as_dict() for c in series],
            "traffic_quality": business.traffic_quality, "frequency_capped": business.frequency_capped,
            "events_error": self.business.error is not None,
        }

    def render_list(self, d: dict) -> str:
        q = d["quarter"]
        parts = [f'<h1>Dashboard</h1><p class="meta">Version {html.escape(str(d["version"] or "none"))} · '
                 f'quarter {d["current_quarter"]} of the hour now · events of the last {HOURS} hours, all hosts</p>']
        if d["events_error"]:
            parts.append('<p class="meta">The recorded events could not all be read (Redis): figures may be '
                         'short.</p>')
        tabs = " · ".join(
            (f"<strong>Quarter {x}{' (now)' if x == d['current_quarter'] else ''}</strong>" if x == q else
             f'<a href="/dashboard?{urlencode({"quarter": x})}">Quarter {x}{" (now)" if x == d["current_quarter"] else ""}</a>')
            for x in sorted(d["quarters"], key=lambda x: (x != d["current_quarter"], x)))
        if tabs:
            parts.append(f"<nav>{tabs}</nav>")
        t = d["totals"]
        parts.append(f'<section class="campaign"><h2>Quarter {q}, all campaigns</h2><table><thead><tr>{METRIC_HEADS}'
                     f'</tr></thead><tbody><tr>{_metrics_cells(t)}</tr></tbody></table>{_quality_cells_d(d)}'
                     f'{hourly_charts(_series(d["per_hour"]), d["hours"])}</section>')
        options = "".join(f'<option value="{s}"{" selected" if s == d["scenario"] else ""}>{s}</option>'
                          for s in SCENARIO_WORDS)
        parts.append(
            f'<form method="get" action="/dashboard" class="filter"><input type="hidden" name="quarter" value="{q}">'
            f'<label>Campaign id or name <input name="q" value="{html.escape(d["query"])}" maxlength="100"></label> '
            f'<label>Scenario <select name="scenario"><option value="">any</option>{options}</select></label> '
            f'<button>Filter</button></form>')
        parts.append(_legend())
        if not d["campaigns"]:
            parts.append("<p>Nothing is published yet: run <code>banners load DATA_DIR</code>.</p>"
                         if d["version"] is None else "<p>No campaign matches.</p>")
        else:
            rows = "".join(
                f'<tr><td><a href="{c["url"]}">{c["campaign_id"]}</a></td>'
                f'<td><a href="{c["url"]}">{html.escape(c["name"] or "")}</a></td>'
                f'<td><span class="tag" title="{html.escape(c["scenario_words"])}">{html.escape(c["scenario"])}</span>'
                f' X={c["x"]}</td>{_metrics_cells(c)}</tr>' for c in d["campaigns"])
            parts.append(f'<p class="meta">{d["matching"]:,} campaigns · page {d["page"]} of {d["pages"]}</p>'
                         f'<div class="scroll"><table><thead><tr><th>Id</th><th>Name</th><th>Scenario</th>'
                         f'{METRIC_HEADS}</tr></thead><tbody>{rows}</tbody></table></div>')
            parts.append(self._pager(d))
        return page("Dashboard", "".join(parts))

    @staticmethod
    def _pager(d: dict) -> str:
        def link(n, text):
            query = {k: v for k, v in (("quarter", d["quarter"]), ("q", d["query"]), ("scenario", d["scenario"]),
                                       ("page", n)) if v}
            return f'<a href="/dashboard?{html.escape(urlencode(query))}">{text}</a>'
        out = []
        if d["page"] > 1:
            out.append(link(d["page"] - 1, "← previous"))
        if d["page"] < d["pages"]:
            out.append(link(d["page"] + 1, "next →"))
        return f'<nav>{" · ".join(out)}</nav>' if out else ""

    # -- one campaign --------------------------------------------------------------------
    def campaign_data(self, campaign: int) -> dict | None:
        current = self.quarter()
        business = self.business()
        catalog = self.store.catalog()
        by_banner = business.banner_totals(campaign=campaign)
        quarters = []
        for q in sorted(self.store.quarters, key=lambda x: (x != current, x)):
            rec = catalog.selection(q, campaign)
            if rec is None:
                continue
            banners = []
            for b in rec["banners"]:
                bid = b["banner_id"]
                banners.append({**b, "rule_words": RULE_WORDS.get(b["source"], b["source"]),
                                "image_url": f"/banners/{bid}.{'png' if self.images.has(bid) else 'svg'}",
                                **{"recorded": by_banner.get((q, campaign, bid), Counts()).as_dict()}})
            total = Counts()
            for (qq, _, _), counts in by_banner.items():
                if qq == q:
                    total.add(counts)
            quarters.append({"quarter": q, "current": q == current, "scenario": rec["scenario"],
                             "scenario_words": SCENARIO_WORDS.get(rec["scenario"], rec["scenario"]),
                             "x": rec["x"], "banners": banners, "totals": total.as_dict()})
        if not quarters:
            return None
        return {"version": self.store.version, "campaign_id": campaign, "name": self.store.campaign_name(campaign),
                "current_quarter": current, "quarters": quarters, "hours": business.hours,
                "per_hour": [c.as_dict() for c in business.per_hour(campaign=campaign)],
                "traffic_quality": business.traffic_quality, "frequency_capped": business.frequency_capped}

    def render_campaign(self, d: dict) -> str:
        name = d["name"] or f"Campaign {d['campaign_id']}"
        parts = [f'<p><a href="/dashboard">← Dashboard</a></p><h1>{html.escape(name)}'
                 f' <span class="meta">#{d["campaign_id"]}</span></h1>'
                 f'<p class="meta">Version {html.escape(str(d["version"]))} · quarter {d["current_quarter"]} now · '
                 f'<a href="/campaigns/{d["campaign_id"]}">serve one banner</a></p>',
                 _quality_cells_d(d), hourly_charts(_series(d["per_hour"]), d["hours"]), _legend()]
        for q in d["quarters"]:
            rows = "".join(
                f'<tr><td><img src="{b["image_url"]}" width="72" height="60" loading="lazy" '
                f'alt="Banner {b["banner_id"]}"></td><td>{b["banner_id"]}</td>'
                f'<td class="rule">{html.escape(b["rule_words"])}</td>{_metrics_cells(b["recorded"])}</tr>'
                for b in q["banners"])
            parts.append(
                f'<section class="campaign"><h2>Quarter {q["quarter"]}{" — now" if q["current"] else ""}'
                f' <span class="tag">{html.escape(q["scenario"])}</span> <span class="meta">X = {q["x"]}</span></h2>'
                f'<p class="meta">{html.escape(q["scenario_words"])}</p><div class="scroll"><table><thead><tr>'
                f'<th>Picture</th><th>Banner</th><th class="rule">Why shown</th>{METRIC_HEADS}</tr></thead>'
                f'<tbody>{rows}<tr class="total"><td></td><td>Total</td><td class="rule"></td>'
                f'{_metrics_cells(q["totals"])}</tr></tbody></table></div></section>')
        return page(f"Dashboard — {name}", "".join(parts))

    # -- HTTP ----------------------------------------------------------------------------
    def _answer(self, req, resp, key, make_data, render):
        self.admin.require(req)
        self.store.ensure_snapshot()
        as_json = wants_json(req)
        resp.cache_control = ["no-store"]  # private figures: never in a shared cache
        resp.vary = ["Accept", "Authorization"]

        def make():
            now = self.monotonic()
            # The operator pages share the worker's only event loop with campaign
            # answers: rendering may take RENDER_SHARE of it over time, in bursts of up
            # to RENDER_BURST s (a leaky bucket; 6 clients hammering uncached pages of
            # the 100k set took campaign p99 from ~50 ms to ~800 ms).  Cached pages are
            # answered whatever the budget.
            busy, since = self._render_debt
            busy = max(0.0, busy - (now - since) * RENDER_SHARE)
            self._render_debt = (busy, now)
            if busy > RENDER_BURST:
                raise falcon.HTTPServiceUnavailable(
                    title="Dashboard busy", retry_after=1,
                    description="This worker is rendering other operator pages; try again in a second.")
            data = make_data()
            out = None if data is None else ("json", data) if as_json else ("html", render(data))
            end = self.monotonic()
            busy, since = self._render_debt
            self._render_debt = (max(0.0, busy - (end - since) * RENDER_SHARE) + (end - now), end)
            return out

        found = self.cache.get(self._key(as_json, *key), make)
        if found is None:
            raise falcon.HTTPNotFound(title="Unknown campaign",
                                      description="That campaign has no selection in the published version.")
        kind, body = found
        if kind == "json":
            resp.media = body
        else:
            resp.content_type = falcon.MEDIA_HTML
            resp.set_headers(HTML_HEADERS)
            resp.text = body

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.admin.require(req)
        quarter = req.get_param_as_int("quarter", min_value=1, max_value=4) or self.quarter()
        query = (req.get_param("q") or "")[:100]
        scenario = req.get_param("scenario") or ""
        if scenario and scenario not in SCENARIO_WORDS:
            scenario = ""
        page_no = req.get_param_as_int("page", min_value=1) or 1
        self._answer(req, resp, ("list", quarter, query, scenario, page_no),
                     lambda: self.list_data(quarter, query, scenario, page_no), self.render_list)

    def on_get_campaign(self, req: falcon.Request, resp: falcon.Response, campaign_id: str) -> None:
        self.admin.require(req)
        campaign = parse_id(campaign_id)
        if campaign is None:
            raise falcon.HTTPNotFound(title="Unknown campaign", description="A campaign id is an integer.")
        self._answer(req, resp, ("campaign", campaign), lambda: self.campaign_data(campaign), self.render_campaign)

    on_head = on_get
    on_head_campaign = on_get_campaign


def _series(per_hour: list[dict]) -> list[Counts]:
    return [Counts(h["impressions"], h["clicks"], h["conversions"], Decimal(str(h["revenue"]))) for h in per_hour]


def _quality_cells_d(d: dict) -> str:
    return _quality_cells(Business([], {}, d.get("traffic_quality"), d.get("frequency_capped")))
