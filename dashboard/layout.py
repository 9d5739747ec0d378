"""Small building blocks shared by the pages."""

from __future__ import annotations

from dash import html

__all__ = ["PERCENTILE_NOTE", "banner", "explain", "page"]

PERCENTILE_NOTE = (
    "Percentiles (median, p90) are read from histograms of the pooled runs, within ±1% of the exact value; "
    "counts, shares and means are exact."
)


def page(title: str, *children: object, intro: str = "") -> html.Div:
    return html.Div([html.H2(title), html.P(intro, className="intro") if intro else None, *children])


def explain(text: str) -> html.P:
    """A sentence where a chart or table would be, saying why it is not."""
    return html.P(text, className="empty-state", style={"color": "#555", "fontStyle": "italic"})


def banner(text: str) -> html.Div | None:
    if not text:
        return None
    return html.Div(text, className="simulated-banner",
                    style={"background": "#fff4ce", "padding": "0.4em 0.8em", "margin": "0.5em 0",
                           "borderLeft": "4px solid #e0a800"})
