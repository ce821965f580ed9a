"""Plotly figures for the Savings page, as pure functions of selector output (already aggregated)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from apps.overuse.selectors import RoutableGroup, SavingsGroup
from apps.usage.money import nanos_to_usd

_LAYOUT = dict(
    margin=dict(l=10, r=10, t=50, b=10),
    legend=dict(orientation="h", yanchor="top", y=-0.15, xanchor="left", x=0),
    template="plotly_white",
    height=380,
)


def _usd(nanos: int) -> float:
    return float(nanos_to_usd(nanos))


def savings_trend(months: Sequence[SavingsGroup], *, title: str) -> go.Figure:
    """Per month: the routable savings range (low and the rest up to high) and avoidable non-work spend."""
    labels = [item.group.label for item in months]
    low = [_usd(item.routable_low_nanos) for item in months]
    rest = [_usd(item.routable_high_nanos - item.routable_low_nanos) for item in months]
    avoidable = [_usd(item.avoidable_nanos) for item in months]
    figure = go.Figure()
    figure.add_bar(
        x=labels, y=low, name="Routable saving (low)", offsetgroup="routable", marker_color="#2456d3",
        hovertemplate="%{x}: $%{y:,.2f} at least<extra></extra>",
    )  # fmt: skip
    figure.add_bar(
        x=labels, y=rest, base=low, name="Routable saving (up to high)", offsetgroup="routable",
        marker_color="#9bb7ff", hovertemplate="%{x}: up to $%{customdata:,.2f}<extra></extra>",
        customdata=[item.routable_high_nanos / 1e9 for item in months],
    )  # fmt: skip
    figure.add_bar(
        x=labels, y=avoidable, name="Avoidable (non-work)", offsetgroup="avoidable", marker_color="#d36b24",
        hovertemplate="%{x}: $%{y:,.2f}<extra></extra>",
    )  # fmt: skip
    figure.update_layout(title=title, barmode="group", yaxis_title="USD", yaxis_tickprefix="$", **_LAYOUT)
    return figure


def opportunities_by_group(groups: Sequence[RoutableGroup], *, title: str, limit: int = 15) -> go.Figure:
    """Horizontal bars of the savings range per group (team or model), largest first."""
    top = list(groups)[:limit][::-1]
    labels = [item.group.label for item in top]
    figure = go.Figure()
    figure.add_bar(
        y=labels, x=[_usd(item.saving_low_nanos) for item in top], orientation="h", name="low",
        marker_color="#2456d3", hovertemplate="%{y}: $%{x:,.2f} at least<extra></extra>",
    )  # fmt: skip
    figure.add_bar(
        y=labels, x=[_usd(item.saving_high_nanos - item.saving_low_nanos) for item in top], orientation="h",
        name="up to high", marker_color="#9bb7ff", hovertemplate="%{y}: up to $%{customdata:,.2f}<extra></extra>",
        customdata=[item.saving_high_nanos / 1e9 for item in top],
    )  # fmt: skip
    layout = dict(_LAYOUT, height=max(240, 28 * len(top) + 90))
    figure.update_layout(title=title, barmode="stack", xaxis_title="USD", xaxis_tickprefix="$", **layout)
    return figure
