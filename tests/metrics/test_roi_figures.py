"""Cost per outcome, value per AI dollar and payroll share against hand computations, to the cent.

Platform, weeks 2026-W32 (3 Aug) and W33 (10 Aug):
    AI spend   W32: $100.00 (3 Aug) + $23.45 (5 Aug) = $123.45     W33: $76.55 (12 Aug)      total $200.00
    PRs merged W32: 7                                             W33: 9                     total 16
    spend per PR: W32 123.45 / 7 = $17.64 (17.6357...), W33 76.55 / 9 = $8.51 (8.5055...), both 200 / 16 = $12.50
    value: 16 PRs x $150 = $2,400.00; value per AI dollar 2,400 / 200 = 12.00x
    payroll: alice, $182,500.00 a year, is Platform's only person: 182,500 x 14 / 365 = $7,000.00;
             AI spend / payroll = 200 / 7,000 = 2.86% (2.857...)
Spend on 2 Aug and 17 Aug lies outside the two weeks and counts nowhere.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from apps.accounts.scoping import organisation_viewer
from apps.metrics import selectors
from apps.metrics.templatetags.metrics_tags import cents
from apps.org.models import Person

START, END = dt.date(2026, 8, 3), dt.date(2026, 8, 16)


@pytest.fixture
def platform_quarter(acme, teams, people, spend, prs_merged, put_values):
    platform = teams["platform"]
    Person.objects.filter(pk=people["alice"].pk).update(annual_loaded_cost=Decimal("182500.00"))
    spend(dt.date(2026, 8, 2), "999.00", person=people["alice"])  # the Sunday before: outside
    spend(dt.date(2026, 8, 3), "100.00", person=people["alice"])
    spend(dt.date(2026, 8, 5), "23.45", team=platform)  # a shared key: the team's, no person
    spend(dt.date(2026, 8, 12), "76.55", person=people["alice"])
    spend(dt.date(2026, 8, 17), "999.00", person=people["alice"])  # the Monday after: outside
    spend(dt.date(2026, 8, 4), "50.00", person=people["bob"])  # Payments: another team
    result = put_values(prs_merged, [("platform", "2026-08-03", 7), ("platform", "2026-W33", "9")])
    assert result.summary() == {"rows": 2, "created": 2, "updated": 0, "unchanged": 0, "rejected": 0}
    return platform


def test_cost_per_outcome_and_value_per_dollar_match_the_hand_computation(acme, platform_quarter, prs_merged):
    viewer = organisation_viewer(acme)
    subject = selectors.team_subject(platform_quarter)

    points = selectors.outcome_points(viewer, prs_merged, subject, start=START, end=END)
    summary = selectors.roi_summary(prs_merged, subject, points)

    assert [(p.label, p.outcome, p.spend_nanos) for p in points] == [
        ("2026-W32", Decimal("7"), 123_450_000_000),
        ("2026-W33", Decimal("9"), 76_550_000_000),
    ]
    assert [cents(p.cost_per_outcome) for p in points] == [Decimal("17.64"), Decimal("8.51")]
    assert points[0].cost_per_outcome == Decimal("123.45") / 7  # exact until displayed
    assert (summary.periods, summary.outcome, summary.spend_nanos) == (2, Decimal("16"), 200_000_000_000)
    assert summary.cost_per_outcome == Decimal("12.5")
    assert summary.value_usd == Decimal("2400")
    assert summary.roi == Decimal("12")


def test_payroll_share_is_spend_over_loaded_payroll_for_the_days(acme, platform_quarter):
    share = selectors.payroll_share(organisation_viewer(acme), platform_quarter, start=START, end=END)

    assert share.spend_nanos == 200_000_000_000
    assert share.days == 14
    assert share.payroll_usd == Decimal("7000")
    assert cents(share.share * 100) == Decimal("2.86")
    assert share.payroll.complete


def test_the_metric_page_shows_the_same_figures_rounded_to_the_cent(as_persona, platform_quarter):
    client = as_persona("finops")
    response = client.get(f"/metrics/prs-merged/?subject=platform&start={START}&end={END}")

    assert response.status_code == 200
    # Team, periods, outcome, AI spend, spend per PR, value, value per AI dollar, spend / payroll
    assert _row(response.content.decode(), "Platform") == [
        "Platform", "2", "16", "$200.00", "$12.50", "$2,400.00", "12.00×", "2.86%"
    ]  # fmt: skip


def test_periods_without_a_value_count_neither_spend_nor_outcome(
    acme, teams, people, spend, prs_merged, put_values
):
    spend(dt.date(2026, 8, 3), "10.00", person=people["alice"])
    spend(dt.date(2026, 8, 10), "30.00", person=people["alice"])  # W33 has no value
    put_values(prs_merged, [("platform", "2026-W32", 4)])

    subject = selectors.team_subject(teams["platform"])
    points = selectors.outcome_points(organisation_viewer(acme), prs_merged, subject, start=START, end=END)
    summary = selectors.roi_summary(prs_merged, subject, points)

    assert (summary.outcome, summary.spend_nanos, summary.cost_per_outcome) == (
        Decimal("4"),
        10_000_000_000,
        Decimal("2.5"),
    )


def test_a_parent_team_counts_the_spend_of_the_teams_below_it(
    acme, teams, people, spend, prs_merged, put_values
):
    spend(dt.date(2026, 8, 4), "12.00", person=people["alice"])  # Platform
    spend(dt.date(2026, 8, 6), "8.00", person=people["bob"])  # Payments
    spend(dt.date(2026, 8, 6), "100.00", person=people["carol"])  # Sales EMEA: not Engineering
    put_values(prs_merged, [("engineering", "2026-W32", 5)])

    subject = selectors.team_subject(teams["engineering"])
    points = selectors.outcome_points(organisation_viewer(acme), prs_merged, subject, start=START, end=END)

    assert selectors.roi_summary(prs_merged, subject, points).cost_per_outcome == Decimal("4")  # $20 / 5


def test_averaged_metrics_have_no_cost_per_outcome_or_value(acme, teams, people, spend, put_values):
    from apps.metrics.models import Aggregation, Metric, MetricGrain

    csat = Metric.objects.create(
        organisation=acme,
        key="csat",
        name="CSAT",
        unit="points",
        aggregation=Aggregation.MEAN,
        grain=MetricGrain.WEEK,
    )
    spend(dt.date(2026, 8, 4), "12.00", person=people["alice"])
    put_values(csat, [("platform", "2026-W32", "4.5"), ("platform", "2026-W33", "4.0")])

    subject = selectors.team_subject(teams["platform"])
    summary = selectors.roi_summary(
        csat,
        subject,
        selectors.outcome_points(organisation_viewer(acme), csat, subject, start=START, end=END),
    )

    assert summary.outcome == Decimal("4.25")  # the mean of the weeks, not their sum
    assert (summary.cost_per_outcome, summary.value_usd, summary.roi) == (None, None, None)


def test_the_team_panel_selector_carries_the_same_numbers(acme, platform_quarter, prs_merged):
    roi = selectors.team_roi(organisation_viewer(acme), platform_quarter, START, END)

    [row] = roi.rows
    assert (row.summary.metric, row.summary.cost_per_outcome, row.summary.roi) == (
        prs_merged,
        Decimal("12.5"),
        Decimal("12"),
    )
    assert roi.payroll.payroll_usd == Decimal("7000")
    assert row.comparison.estimate is None  # one person, no adoption date: nothing to compare


def test_the_team_panel_renders_for_a_team_page(acme, platform_quarter, rf):
    from django.template.loader import render_to_string

    roi = selectors.team_roi(organisation_viewer(acme), platform_quarter, START, END)
    html = render_to_string("metrics/_team_panel.html", {"team_roi": roi})

    assert "$200.00" in html and "$12.50" in html and "12.00×" in html and "2.86%" in html
    assert "observational — not proof of cause" in html


def _row(html: str, first_cell: str) -> list[str]:
    import re

    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, flags=re.S):
        cells = [
            re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r}")
