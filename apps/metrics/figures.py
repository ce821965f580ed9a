"""Plotly figures for the ROI pages: pure functions of selector output (aggregated points, never rows).

Floats appear only here, for drawing; every figure a reader is told in text comes from the Decimal
selectors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from apps.dashboards.embed import figure_div
from apps.metrics.method import LABEL, Estimate
from apps.metrics.selectors import NANOS, AdoptionWeek, PeriodPoint

_LAYOUT = dict(
    margin=dict(l=10, r=10, t=50, b=10),
    hovermode="x unified",
    legend=dict(orientation="h", yanchor="top", y=-0.15, xanchor="left", x=0),
    template="plotly_white",
    height=380,
)
SPEND_COLOUR = "#9bb7ff"
METRIC_COLOUR = "#1d2433"
COMPARISON_COLOUR = "#d68910"


def _usd(nanos: int) -> float:
    return float(nanos / NANOS)


def cost_per_outcome_over_time(points: Sequence[PeriodPoint], *, title: str, unit: str) -> go.Figure:
    """AI spend per unit of outcome, per period (gaps where no value was sent or the value is zero)."""
    shown = [point for point in points if point.cost_per_outcome is not None]
    figure = go.Figure(
        go.Scatter(
            x=[point.period_start for point in shown],
            y=[float(point.cost_per_outcome) for point in shown],  # type: ignore[arg-type]
            mode="lines+markers",
            name=f"AI spend per {unit}",
            text=[point.label for point in shown],
            hovertemplate="%{text}: $%{y:,.2f}<extra></extra>",
            line=dict(color=METRIC_COLOUR),
        )
    )
    figure.update_layout(title=title, yaxis_title=f"USD per {unit}", yaxis_tickprefix="$", **_LAYOUT)
    return figure


def spend_and_metric_over_time(
    points: Sequence[PeriodPoint],
    *,
    title: str,
    metric_name: str,
    unit: str,
    adopted_on: dt.date | None = None,
) -> go.Figure:
    """AI spend (bars, left axis) and the metric (line, right axis) per period."""
    figure = go.Figure()
    figure.add_bar(
        x=[point.period_start for point in points],
        y=[_usd(point.spend_nanos) for point in points],
        name="AI spend",
        marker_color=SPEND_COLOUR,
        hovertemplate="$%{y:,.2f}<extra>AI spend</extra>",
    )
    with_values = [point for point in points if point.outcome is not None]
    figure.add_scatter(
        x=[point.period_start for point in with_values],
        y=[float(point.outcome) for point in with_values],  # type: ignore[arg-type]
        name=metric_name,
        yaxis="y2",
        mode="lines+markers",
        line=dict(color=METRIC_COLOUR),
        hovertemplate="%{y:,.4~f} " + unit + "<extra>" + metric_name + "</extra>",
    )
    if adopted_on is not None:
        _adoption_line(figure, adopted_on)
    figure.update_layout(
        title=title,
        yaxis=dict(title="AI spend (USD)", tickprefix="$"),
        yaxis2=dict(title=unit, overlaying="y", side="right", rangemode="tozero"),
        **_LAYOUT,
    )
    return figure


def trend_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """(slope, intercept) of the least-squares line, or None when it is undefined (< 3 points, flat x)."""
    if len(xs) < 3 or len(set(xs)) < 2:
        return None
    slope, intercept = np.polyfit(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), 1)
    return float(slope), float(intercept)


def spend_vs_metric_scatter(
    points: Sequence[PeriodPoint], *, title: str, metric_name: str, unit: str
) -> go.Figure:
    """One dot per period (spend, outcome) and a least-squares trend line: association, not cause."""
    shown = [point for point in points if point.outcome is not None]
    xs = [_usd(point.spend_nanos) for point in shown]
    ys = [float(point.outcome) for point in shown]  # type: ignore[arg-type]
    figure = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            name="periods",
            text=[point.label for point in shown],
            hovertemplate="%{text}: $%{x:,.2f} spend, %{y:,.4~f} " + unit + "<extra></extra>",
            marker=dict(color=METRIC_COLOUR, size=9),
        )
    )
    line = trend_line(xs, ys)
    if line is not None:
        slope, intercept = line
        low, high = min(xs), max(xs)
        figure.add_scatter(
            x=[low, high],
            y=[slope * low + intercept, slope * high + intercept],
            mode="lines",
            name="trend (least squares)",
            line=dict(color=COMPARISON_COLOUR, dash="dash"),
            hoverinfo="skip",
        )
    layout = dict(_LAYOUT, hovermode="closest")
    figure.update_layout(
        title=title, xaxis_title="AI spend per period (USD)", xaxis_tickprefix="$", yaxis_title=unit, **layout
    )
    return figure


def adoption_over_time(weeks: Sequence[AdoptionWeek], *, title: str) -> go.Figure:
    """Weekly active people (bars) and spend per active person (line; absent in suppressed weeks)."""
    figure = go.Figure()
    figure.add_bar(
        x=[week.week_start for week in weeks],
        y=[week.active_people for week in weeks],
        name="weekly active people",
        marker_color=SPEND_COLOUR,
        hovertemplate="%{y} active<extra></extra>",
    )
    shown = [week for week in weeks if week.spend_per_active_nanos is not None]
    figure.add_scatter(
        x=[week.week_start for week in shown],
        y=[_usd(week.spend_per_active_nanos) for week in shown],  # type: ignore[arg-type]
        name="AI spend per active person",
        yaxis="y2",
        mode="lines+markers",
        line=dict(color=METRIC_COLOUR),
        hovertemplate="$%{y:,.2f} per active person<extra></extra>",
    )
    figure.update_layout(
        title=title,
        yaxis=dict(title="active people", rangemode="tozero"),
        yaxis2=dict(
            title="USD per active person", overlaying="y", side="right", tickprefix="$", rangemode="tozero"
        ),
        **_LAYOUT,
    )
    return figure


def comparison_over_time(
    estimate: Estimate, *, title: str, team: str, unit: str, adopted_on: dt.date
) -> go.Figure:
    """The team's values and the matched teams' mean, before and after the adoption date."""
    periods = sorted(estimate.treated)
    figure = go.Figure()
    figure.add_scatter(
        x=periods,
        y=[estimate.treated[p] for p in periods],
        name=team,
        mode="lines+markers",
        line=dict(color=METRIC_COLOUR),
    )
    figure.add_scatter(
        x=periods,
        y=[estimate.comparison[p] for p in periods],
        name="comparison teams (mean): " + ", ".join(match.name for match in estimate.matches),
        mode="lines+markers",
        line=dict(color=COMPARISON_COLOUR, dash="dot"),
    )
    _adoption_line(figure, adopted_on)
    figure.update_layout(title=f"{title} ({LABEL})", yaxis_title=unit, **_LAYOUT)
    return figure


def _adoption_line(figure: go.Figure, adopted_on: dt.date) -> None:
    figure.add_shape(
        type="line",
        x0=adopted_on,
        x1=adopted_on,
        y0=0,
        y1=1,
        yref="paper",
        line=dict(color="#c0392b", dash="dash"),
    )
    figure.add_annotation(
        x=adopted_on, y=1, yref="paper", text="adoption date", showarrow=False, yanchor="bottom"
    )


def to_html(figure: go.Figure, *, element_id: str) -> str:
    """A div for a page that loads plotly.js once from static/ (never from a CDN)."""
    return figure_div(figure, element_id=element_id)
