"""Plotly figures as pure functions of selector output (already aggregated: never fact rows)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from apps.usage.money import nanos_to_usd
from apps.usage.selectors import DailyPoint, SpendGroup

_LAYOUT = dict(
    margin=dict(l=10, r=10, t=50, b=10),
    hovermode="x unified",
    legend=dict(orientation="h", yanchor="top", y=-0.12, xanchor="left", x=0),
    template="plotly_white",
    height=400,
)


def spend_over_time(points: Sequence[DailyPoint], *, title: str) -> go.Figure:
    """Stacked daily spend per series (provider, team, ...)."""
    frame = pd.DataFrame(
        [{"day": p.day, "series": p.series, "usd": float(nanos_to_usd(p.cost_nanos))} for p in points],
        columns=["day", "series", "usd"],
    )
    figure = go.Figure()
    if not frame.empty:
        table = frame.pivot_table(index="day", columns="series", values="usd", aggfunc="sum", fill_value=0)
        order = table.sum().sort_values(ascending=False).index
        for series in order:
            figure.add_bar(
                x=table.index,
                y=table[series],
                name=str(series),
                hovertemplate="%{x|%d %b %Y}: $%{y:,.2f}<extra>%{fullData.name}</extra>",
            )
    figure.update_layout(
        title=title, barmode="stack", yaxis_title="USD per day", yaxis_tickprefix="$", **_LAYOUT
    )
    return figure


def spend_by_group(groups: Sequence[SpendGroup], *, title: str, limit: int = 20) -> go.Figure:
    """Horizontal bars, largest first; the unattributed group is named as such."""
    top = list(groups)[:limit]
    labels = [group.label for group in top][::-1]
    values = [float(nanos_to_usd(group.cost_nanos)) for group in top][::-1]
    figure = go.Figure(
        go.Bar(x=values, y=labels, orientation="h", hovertemplate="%{y}: $%{x:,.2f}<extra></extra>")
    )
    layout = dict(_LAYOUT, height=max(260, 28 * len(top) + 80), hovermode="closest")
    figure.update_layout(title=title, xaxis_title="USD", xaxis_tickprefix="$", **layout)
    return figure


def to_html(figure: go.Figure, *, element_id: str) -> str:
    """A div for a page that loads plotly.js once from static/ (never from a CDN)."""
    return figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=element_id,
        config={"displaylogo": False, "responsive": True},
    )
