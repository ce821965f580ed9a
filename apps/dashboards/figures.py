"""Plotly figures as pure functions of selector output (already aggregated: never fact rows)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import pandas as pd
import plotly.graph_objects as go

from apps.dashboards.embed import figure_div
from apps.dashboards.selectors import Row
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
    return figure_div(figure, element_id=element_id)


# --- the dashboards' charts: pure functions of apps.dashboards.selectors output ---------------------------
# Each takes the rows a selector returned (already aggregated: at most days x series points) and, where a
# click should open the fact rows behind a point, a function from a row to that link (in customdata;
# static/dashboards/drill.js follows it).

Drill = Callable[[Row], str] | None
TIER_COLOURS = {"Frontier": "#c0392b", "Standard": "#2456d3", "Small": "#1e8449", "Not tiered yet": "#8d96a8"}


def _usd(nanos: int) -> float:
    return float(nanos_to_usd(nanos))


def _layout(figure: go.Figure, *, title: str, height: int = 380, **extra) -> go.Figure:
    layout = dict(_LAYOUT, height=height)
    layout.update(extra)
    figure.update_layout(title=dict(text=title, x=0, xanchor="left"), **layout)
    return figure


def daily_stacked(rows: Sequence[Row], *, title: str, drill: Drill = None) -> go.Figure:
    """Stacked daily spend, one trace per series (selectors.daily_top has cut them to a few), largest
    first, the summed rest ("Other ...") last."""
    totals: dict[str, int] = defaultdict(int)
    series: dict[str, dict] = {}
    for row in rows:
        totals[row.label] += row.cost_nanos
        points = series.setdefault(row.label, {"x": [], "y": [], "link": [], "other": row.extra.get("other")})
        points["x"].append(row.day)
        points["y"].append(_usd(row.cost_nanos))
        points["link"].append(drill(row) if drill else "")
    figure = go.Figure()
    for label in sorted(series, key=lambda label: (bool(series[label]["other"]), -totals[label])):
        points = series[label]
        figure.add_bar(
            x=points["x"],
            y=points["y"],
            name=label,
            customdata=points["link"],
            marker_color="#b8bfcc" if points["other"] else None,
            hovertemplate="%{x|%d %b %Y}: $%{y:,.2f}<extra>%{fullData.name}</extra>",
        )
    return _layout(figure, title=title, barmode="stack", yaxis_title="USD per day", yaxis_tickprefix="$")


def daily_total(rows: Sequence[Row], *, title: str, drill: Drill = None) -> go.Figure:
    figure = go.Figure(
        go.Bar(
            x=[row.day for row in rows],
            y=[_usd(row.cost_nanos) for row in rows],
            name="Spend",
            customdata=[drill(row) if drill else "" for row in rows],
            hovertemplate="%{x|%d %b %Y}: $%{y:,.2f}<extra></extra>",
        )
    )
    return _layout(figure, title=title, yaxis_title="USD per day", yaxis_tickprefix="$", showlegend=False)


def bars(
    rows: Sequence[Row],
    *,
    title: str,
    measure: str = "cost",
    limit: int = 20,
    drill: Drill = None,
    colour_by: Callable[[Row], str] | None = None,
    colours: dict[str, str] | None = None,
) -> go.Figure:
    """Horizontal bars, largest first: spend (`measure="cost"`) or requests."""
    top = list(rows)[:limit][::-1]
    if measure == "cost":
        values = [_usd(row.cost_nanos) for row in top]
        template, axis = "%{y}: $%{x:,.2f}<extra></extra>", dict(xaxis_title="USD", xaxis_tickprefix="$")
    else:
        values = [row.totals.requests or 0 for row in top]
        template, axis = "%{y}: %{x:,} requests<extra></extra>", dict(xaxis_title="Requests")
    figure = go.Figure()
    groups = [colour_by(row) for row in top] if colour_by else [""] * len(top)
    for group in dict.fromkeys(groups):
        members = [index for index, name in enumerate(groups) if name == group]
        figure.add_bar(
            x=[values[i] for i in members],
            y=[top[i].label for i in members],
            orientation="h",
            name=group or title,
            marker_color=(colours or {}).get(group),
            customdata=[drill(top[i]) if drill else "" for i in members],
            hovertemplate=template,
        )
    height = max(240, 26 * len(top) + 110)
    return _layout(
        figure,
        title=title,
        height=height,
        hovermode="closest",
        showlegend=bool(colour_by),
        yaxis=dict(categoryorder="array", categoryarray=[row.label for row in top]),
        **axis,
    )


def spend_distribution(
    rows: Sequence[Row], *, title: str, heavy: set[int | None], drill: Drill = None
) -> go.Figure:
    """Spend per person as a strip over a box: the spread of a team, with heavy users in their own colour."""
    figure = go.Figure()
    figure.add_box(
        x=[_usd(row.cost_nanos) for row in rows],
        name="People",
        boxpoints=False,
        hoverinfo="skip",
        marker_color="#9aa6bd",
    )
    for is_heavy, name, colour in ((False, "Typical", "#2456d3"), (True, "Heavy users", "#c0392b")):
        members = [row for row in rows if (row.object_id in heavy) == is_heavy]
        figure.add_scatter(
            x=[_usd(row.cost_nanos) for row in members],
            y=["People"] * len(members),
            mode="markers",
            name=name,
            marker=dict(color=colour, size=9 if is_heavy else 7, opacity=0.8),
            text=[row.label for row in members],
            customdata=[drill(row) if drill else "" for row in members],
            hovertemplate="%{text}: $%{x:,.2f}<extra></extra>",
        )
    return _layout(
        figure,
        title=title,
        height=260,
        hovermode="closest",
        xaxis_title="USD per person in the period",
        xaxis_tickprefix="$",
        yaxis=dict(showticklabels=False),
    )


def team_treemap(nodes: Sequence, *, title: str) -> go.Figure:
    """The team tree sized by spend (a team's own usage plus its sub-teams'). Negative amounts (a bill below
    the gateway's figures, booked as unattributed) cannot be drawn as areas: they count as zero here and
    stay exact in the table."""
    ids = [f"team-{node.team_id}" if node.team_id else "unattributed" for node in nodes]
    known = set(ids)
    figure = go.Figure(
        go.Treemap(
            ids=ids,
            labels=[node.name for node in nodes],
            parents=[
                f"team-{node.parent_id}" if node.parent_id and f"team-{node.parent_id}" in known else ""
                for node in nodes
            ],
            values=[max(0.0, _usd(node.own.cost_nanos)) for node in nodes],
            branchvalues="remainder",
            customdata=[_usd(node.subtree_cost_nanos) for node in nodes],
            hovertemplate="%{label}: $%{customdata:,.2f} with its sub-teams<extra></extra>",
            textinfo="label+percent root",
        )
    )
    return _layout(figure, title=title, height=460, margin=dict(l=4, r=4, t=50, b=4))
