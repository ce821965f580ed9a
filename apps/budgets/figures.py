"""Plotly figures for budget pages: pure functions of selector output (already aggregated per day)."""

from __future__ import annotations

import plotly.graph_objects as go

from apps.budgets.selectors import Burn
from apps.dashboards.embed import figure_div

_LAYOUT = dict(
    margin=dict(l=10, r=10, t=50, b=10),
    hovermode="x unified",
    legend=dict(orientation="h", yanchor="top", y=-0.12, xanchor="left", x=0),
    template="plotly_white",
    height=400,
)


def burn_chart(data: Burn, *, title: str) -> go.Figure:
    """Cumulative spend against the limit, with the forecast and its low-high band to the period's end."""
    usd = data.unit == "usd"
    money = "$%{y:,.2f}" if usd else "%{y:,.0f} tokens"
    figure = go.Figure()
    if data.forecast:
        start = data.actual[-1] if data.actual else None
        days = ([start[0]] if start else []) + [point.day for point in data.forecast]
        first = [start[1]] if start else []
        figure.add_scatter(
            x=days,
            y=first + [point.high for point in data.forecast],
            mode="lines",
            line=dict(width=0),
            hoverinfo="skip",
            showlegend=False,
        )
        figure.add_scatter(
            x=days,
            y=first + [point.low for point in data.forecast],
            mode="lines",
            line=dict(width=0),
            fill="tonexty",
            fillcolor="rgba(36, 86, 211, 0.15)",
            name="Forecast range (90 %)",
            hoverinfo="skip",
        )
        figure.add_scatter(
            x=days,
            y=first + [point.mid for point in data.forecast],
            mode="lines",
            line=dict(dash="dash", color="#2456d3"),
            name="Forecast",
            hovertemplate=f"%{{x|%d %b}}: {money}<extra>forecast</extra>",
        )
    figure.add_scatter(
        x=[day for day, _ in data.actual],
        y=[value for _, value in data.actual],
        mode="lines+markers",
        marker=dict(size=4),
        line=dict(color="#1d2433"),
        name="Actual",
        hovertemplate=f"%{{x|%d %b}}: {money}<extra>actual</extra>",
    )
    figure.add_scatter(
        x=[data.period_start, data.period_end],
        y=[data.limit, data.limit],
        mode="lines",
        line=dict(color="#c0392b", width=2),
        name="Limit",
        hovertemplate=f"{money}<extra>limit</extra>",
    )
    if data.exhaustion_date is not None:
        figure.add_vline(x=data.exhaustion_date, line=dict(color="#c0392b", dash="dot", width=1))
        figure.add_annotation(
            x=data.exhaustion_date,
            y=data.limit,
            text=f"limit reached {data.exhaustion_date:%-d %b}",
            showarrow=False,
            yshift=12,
            font=dict(color="#c0392b"),
        )
    figure.update_layout(
        title=title,
        xaxis=dict(range=[data.period_start, data.period_end]),
        yaxis_title="USD, cumulative" if usd else "tokens, cumulative",
        yaxis_tickprefix="$" if usd else "",
        **_LAYOUT,
    )
    return figure


def to_html(figure: go.Figure, *, element_id: str) -> str:
    """A div for a page that loads plotly.js once from static/ (never from a CDN)."""
    return figure_div(figure, element_id=element_id)
