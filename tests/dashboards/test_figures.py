"""Charts are pure functions of selector output: what they draw is what the table behind them holds."""

from __future__ import annotations

import datetime as dt

from apps.dashboards import figures
from apps.dashboards.selectors import Row, TeamNode, Totals

DAY = dt.date(2026, 11, 2)


def row(label: str, cost_nanos: int, day: dt.date | None = None, **extra) -> Row:
    return Row(
        hash(label) % 1000 + 1, label.lower(), label, Totals(cost_nanos=cost_nanos, requests=3), day, extra
    )


def test_a_stacked_daily_chart_draws_every_series_largest_first_and_the_rest_last():
    rows = [
        row("Platform", 2_000_000_000, DAY),
        row("Other (3 more)", 9_000_000_000, DAY, other=True),
        row("Payments", 5_000_000_000, DAY),
        row("Payments", 1_000_000_000, DAY + dt.timedelta(days=1)),
    ]
    figure = figures.daily_stacked(rows, title="t", drill=lambda r: f"/facts/?x={r.label}")
    assert [trace.name for trace in figure.data] == ["Payments", "Platform", "Other (3 more)"]
    assert list(figure.data[0].y) == [5.0, 1.0]
    assert list(figure.data[0].customdata) == ["/facts/?x=Payments", "/facts/?x=Payments"]
    assert figure.layout.barmode == "stack"


def test_bars_show_the_largest_on_top_and_can_count_requests():
    rows = [row("A", 3_000_000_000), row("B", 2_000_000_000), row("C", 1_000_000_000)]
    figure = figures.bars(rows, title="t", limit=2)
    assert list(figure.data[0].y) == ["B", "A"] and list(figure.data[0].x) == [2.0, 3.0]
    requests = figures.bars(rows, title="t", measure="requests")
    assert list(requests.data[0].x) == [3, 3, 3]


def test_the_treemap_draws_a_negative_amount_as_zero_and_keeps_the_tree():
    nodes = [
        TeamNode(1, "eng", "Engineering", None, Totals(cost_nanos=1_000_000_000), 3_000_000_000, 0),
        TeamNode(2, "platform", "Platform", 1, Totals(cost_nanos=2_000_000_000), 2_000_000_000, 1),
        TeamNode(None, None, "Unattributed", None, Totals(cost_nanos=-500_000_000), -500_000_000, 0),
    ]
    trace = figures.team_treemap(nodes, title="t").data[0]
    assert list(trace.ids) == ["team-1", "team-2", "unattributed"]
    assert list(trace.parents) == ["", "team-1", ""]
    assert list(trace.values) == [1.0, 2.0, 0.0]
    assert list(trace.customdata) == [3.0, 2.0, -0.5]


def test_heavy_users_stand_apart_from_the_spread():
    people = [row(f"P{i}", 1_000_000_000 + i * 10_000_000) for i in range(10)] + [row("Max", 9_000_000_000)]
    figure = figures.spend_distribution(people, title="t", heavy={people[-1].object_id})
    typical, heavy = figure.data[1], figure.data[2]
    assert heavy.name == "Heavy users" and list(heavy.text) == ["Max"] and len(typical.x) == 10
