"""The dashboard's charts: small bar charts, one bar an hour, drawn as inline SVG here
(no script, no inline style: the strict CSP holds).
"""

from __future__ import annotations

import html

from .business import Counts


def svg_bars(values: list[float], label: str, hours: list[str], width: int = 480, height: int = 64) -> str:
    """A small bar chart of `values` (one per hour), as inline SVG: no script, no style
    attribute (the CSP's style-src does not cover them); colours are presentation
    attributes, which the CSP does not govern."""
    top = max(values, default=0) or 1
    n = max(len(values), 1)
    bar = width / n
    bars = []
    for i, v in enumerate(values):
        h = 0 if not v else max(1.0, (height - 2) * v / top)
        title = f"{hours[i] if i < len(hours) else ''}: {v:g}"
        bars.append(f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{max(bar - 1, 1):.1f}" '
                    f'height="{h:.1f}" fill="#3b6fd8"><title>{html.escape(title)}</title></rect>')
    total, peak = sum(values), max(values, default=0)
    return (f'<figure class="chart"><svg viewBox="0 0 {width} {height}" width="100%" height="{height}" '
            f'role="img" aria-label="{html.escape(label)} per hour, last {len(values)} hours" '
            f'preserveAspectRatio="none"><rect x="0" y="0" width="{width}" height="{height}" fill="#f0f2f7"/>'
            f'{"".join(bars)}</svg><figcaption>{html.escape(label)} per hour, last {len(values)} h '
            f'(total {total:g}, top hour {peak:g})</figcaption></figure>')


def hourly_charts(series: list[Counts], hours: list[str]) -> str:
    return (svg_bars([c.impressions for c in series], "Impressions", hours)
            + svg_bars([c.clicks for c in series], "Clicks", hours)
            + svg_bars([float(c.revenue) for c in series], "Revenue", hours))
