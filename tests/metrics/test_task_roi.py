"""The ROI panel of a task page, against a hand computation to the cent.

Support triage, weeks 2026-W32 (3 Aug) and W33 (10 Aug), tickets triaged valued at $1.20 each:
    AI spend on the task  W32: $30.00 (alice, Platform, 4 Aug) + $12.50 (bob, Payments, 6 Aug) = $42.50
                          W33: $20.00 (carol, Sales EMEA, 11 Aug)                              = $20.00
    tickets triaged       W32: 50                          W33: 40                       total 90
    spend per ticket      W32: 42.50 / 50 = $0.85          W33: 20 / 40 = $0.50          both 62.50 / 90 = $0.69 (0.6944...)
    value: 90 x $1.20 = $108.00; value per AI dollar 108 / 62.50 = 1.728 -> 1.73x
Spend on another task (alice, $500 on 5 Aug) and on the task outside the weeks (17 Aug) counts nowhere.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.http import Http404

from apps.accounts.scoping import organisation_viewer
from apps.metrics import selectors
from apps.metrics.models import Aggregation, Direction, Metric, MetricGrain, MetricScope
from apps.metrics.templatetags.metrics_tags import cents
from apps.org.models import Task

START, END = dt.date(2026, 8, 3), dt.date(2026, 8, 16)
PERIOD = f"start={START}&end={END}"


@pytest.fixture
def triage(acme, teams, people, spend, put_values) -> Task:
    task = Task.objects.create(organisation=acme, key="support-triage", name="Support triage")
    other = Task.objects.create(organisation=acme, key="code-review", name="Code review")
    metric = Metric.objects.create(
        organisation=acme,
        key="tickets-triaged",
        name="Tickets triaged",
        unit="tickets",
        direction=Direction.HIGHER,
        aggregation=Aggregation.SUM,
        grain=MetricGrain.WEEK,
        scope=MetricScope.TASK,
        value_per_unit=Decimal("1.20"),
    )
    spend(dt.date(2026, 8, 4), "30.00", person=people["alice"], task=task)
    spend(dt.date(2026, 8, 6), "12.50", person=people["bob"], task=task)
    spend(dt.date(2026, 8, 11), "20.00", person=people["carol"], task=task)
    spend(dt.date(2026, 8, 5), "500.00", person=people["alice"], task=other)  # another task
    spend(dt.date(2026, 8, 17), "999.00", person=people["alice"], task=task)  # after the two weeks
    result = put_values(
        metric, [("support-triage", "2026-W32", 50), ("support-triage", "2026-W33", 40)], subject="task"
    )
    assert result.summary()["created"] == 2
    return task


def test_the_task_panel_matches_the_hand_computation(acme, triage):
    roi = selectors.task_roi(organisation_viewer(acme), triage, START, END)

    [row] = roi.rows
    summary = row.summary
    assert (summary.periods, summary.outcome, summary.spend_nanos) == (2, Decimal("90"), 62_500_000_000)
    assert cents(summary.cost_per_outcome) == Decimal("0.69")
    assert summary.value_usd == Decimal("108.00")
    assert summary.roi == Decimal("1.728")
    assert [(p.label, p.spend_nanos, p.cost_per_outcome) for p in row.points] == [
        ("2026-W32", 42_500_000_000, Decimal("0.85")),
        ("2026-W33", 20_000_000_000, Decimal("0.5")),
    ]


def test_the_task_page_shows_the_panel_to_finops_only(as_persona, triage):
    finops = as_persona("finops").get(f"/tasks/support-triage/?{PERIOD}")
    html = finops.content.decode()
    assert finops.status_code == 200
    assert 'data-testid="roi-panel"' in html
    for figure in ("$62.50", "$0.69", "1.73×", "2026-W32 $0.85", "2026-W33 $0.50"):
        assert figure in html, figure
    assert "observational — not proof of cause" in html

    # A manager sees the task page (their teams' share of it) but not organisation-wide outcomes.
    manager = as_persona("eng_manager").get(f"/tasks/support-triage/?{PERIOD}")
    assert manager.status_code == 200
    assert 'data-testid="roi-panel"' not in manager.content.decode()


def test_a_task_without_metric_values_has_no_panel(as_persona, triage):
    response = as_persona("finops").get(f"/tasks/code-review/?{PERIOD}")
    assert response.status_code == 200
    assert 'data-testid="roi-panel"' not in response.content.decode()


def test_the_task_panel_selector_refuses_managers_and_other_organisations(acme, triage, teams):
    from apps.accounts.models import Role
    from apps.accounts.scoping import Viewer, subtree_team_ids
    from apps.org.models import Organisation

    manager = Viewer(acme.pk, Role.MANAGER, subtree_team_ids(acme.pk, {teams["engineering"].pk}), None)
    with pytest.raises(Http404):
        selectors.task_roi(manager, triage, START, END)
    other = Organisation.objects.create(name="Globex", slug="globex")
    with pytest.raises(Http404):
        selectors.task_roi(organisation_viewer(other), triage, START, END)
