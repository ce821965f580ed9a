"""The Metrics (ROI), Budgets and Savings pages in a real browser, on the demo with its metrics and limits:
each answers, draws its charts without a console error, and the ROI page makes no causal claim."""

from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot
from tests.browser.test_dashboards import CIO, charts_drawn


@pytest.fixture
def demo_with_outcomes(demo):
    from apps.budgets.demo import seed_demo_limits
    from apps.metrics.demo import seed_demo_metrics

    seed_demo_limits(demo.organisation)
    seed_demo_metrics(demo.organisation)
    return demo


@pytest.mark.parametrize("path", ["/metrics/tickets-resolved/", "/budgets/{limit}/", "/savings/"])
def test_the_page_draws_its_charts_without_console_errors(demo_with_outcomes, open_as, path):
    from apps.budgets.models import Limit

    path = path.format(limit=Limit.objects.order_by("pk").values_list("pk", flat=True).first())
    page = open_as(CIO)
    response = page.goto(path)
    assert response.status == 200, path
    page.wait_for_load_state("networkidle")
    charts = charts_drawn(page)
    assert charts, path
    for chart in charts:
        assert chart["drawn"] and chart["traces"] >= 1, (path, chart)
    screenshot(page, "page" + path.replace("/", "-").rstrip("-"))
    assert page.console_errors == [], (path, page.console_errors)
    if path.startswith("/metrics/"):
        text = page.inner_text("body").lower()
        assert "observational" in text
        assert "caused" not in text and "proves" not in text


def test_a_team_page_carries_its_business_outcomes(demo_with_outcomes, open_as):
    page = open_as(CIO)
    response = page.goto("/teams/support-tier-1/")
    assert response.status == 200
    page.wait_for_load_state("networkidle")
    panel = page.locator("[data-testid=roi-panel]")
    assert panel.count() == 1
    assert "Support tickets resolved" in panel.inner_text()
    screenshot(page, "team-roi-panel")
    assert page.console_errors == []


def test_a_task_page_carries_its_business_outcomes(demo_with_outcomes, open_as):
    page = open_as(CIO)
    response = page.goto("/tasks/support-triage/")
    assert response.status == 200
    page.wait_for_load_state("networkidle")
    panel = page.locator("[data-testid=roi-panel]")
    assert panel.count() == 1
    assert "Tickets triaged" in panel.inner_text()
    screenshot(page, "task-roi-panel")
    assert page.console_errors == []
