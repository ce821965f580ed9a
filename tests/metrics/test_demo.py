"""The demo's outcomes tell both stories, on whichever day the demo is loaded, and loading again changes nothing."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from apps.accounts.scoping import organisation_viewer
from apps.ingestion import demo as org_demo
from apps.metrics import selectors
from apps.metrics.demo import SERIES, WEEKS, adoption_date, seed_demo_metrics
from apps.metrics.models import Adoption, Metric, MetricValue
from apps.org.models import Person, Team

pytestmark = pytest.mark.django_db


@pytest.fixture
def northwind():
    return org_demo.build_demo_org(org_demo.demo_plan())


def stories(organisation) -> dict[tuple[str, str], object]:
    viewer = organisation_viewer(organisation)
    teams = {team.slug: team for team in Team.objects.filter(organisation=organisation)}
    metrics = {metric.key: metric for metric in Metric.objects.filter(organisation=organisation)}
    return {
        (key, slug): selectors.comparison(viewer, metrics[key], teams[slug])
        for key, slug in [
            ("tickets-resolved", "support-tier-1"),
            ("tickets-reopened", "support-tier-1"),
            ("csat", "support-tier-1"),
            ("prs-merged", "platform"),
            ("prs-merged", "payments"),
            ("deals-closed", "sales-emea"),
            ("new-revenue", "sales-emea"),
        ]
    }


def test_some_outcomes_rise_after_adoption_and_some_do_not_on_any_day(northwind):
    for today in [dt.date(2026, 9, 30) + dt.timedelta(days=9 * i) for i in range(6)]:  # loading on later days
        seed_demo_metrics(northwind, today=today)
        found = stories(northwind)

        signs = {key: c.estimate.sign for key, c in found.items() if c.estimate is not None}
        assert signs == {
            ("tickets-resolved", "support-tier-1"): 1,  # more tickets resolved per agent
            ("tickets-reopened", "support-tier-1"): -1,  # fewer reopened: lower is better
            ("csat", "support-tier-1"): 0,
            ("prs-merged", "platform"): 1,
            ("prs-merged", "payments"): 0,
            ("deals-closed", "sales-emea"): 0,
        }, today
        assert found[("prs-merged", "payments")].did_not_improve is True
        assert [m.name for m in found[("prs-merged", "platform")].estimate.matches] == [
            "Mobile"
        ]  # not Data Science
        assert [m.name for m in found[("tickets-resolved", "support-tier-1")].estimate.matches] == [
            "Support Tier 2"
        ]
        revenue = found[("new-revenue", "sales-emea")].result
        assert revenue.reason.startswith("fewer than 4 months of values before or after the adoption date")
        assert found[("prs-merged", "platform")].adopted_on == adoption_date(today)


def test_seeding_twice_changes_nothing_and_fills_loaded_costs(northwind):
    today = dt.date(2026, 11, 20)
    first = seed_demo_metrics(northwind, today=today)

    expected_values = sum(6 if s.metric == "new-revenue" else WEEKS for s in SERIES)
    assert (first.metrics, first.adoptions, first.values.rows, first.values.created) == (
        7,
        4,
        expected_values,
        expected_values,
    )
    assert first.values.rejected == 0
    assert first.costs_filled == Person.objects.filter(organisation=northwind).count()
    assert not Person.objects.filter(organisation=northwind, annual_loaded_cost__isnull=True).exists()

    again = seed_demo_metrics(northwind, today=today)
    assert again.values.summary() == {
        "rows": expected_values,
        "created": 0,
        "updated": 0,
        "unchanged": expected_values,
        "rejected": 0,
    }
    assert again.costs_filled == 0
    assert MetricValue.objects.filter(metric__organisation=northwind).count() == expected_values
    assert Adoption.objects.filter(organisation=northwind).count() == 4


def test_the_pages_render_with_the_loaded_demo(client, tmp_path, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    today = timezone.now().astimezone(ZoneInfo(org_demo.ORG_TIME_ZONE)).date()
    result = org_demo.load_demo(today, scale=0.02, directory=tmp_path)
    seeded = seed_demo_metrics(result.organisation)
    assert seeded.values.rejected == 0
    client.login(username=f"cio@{org_demo.EMAIL_DOMAIN}", password=org_demo.DEMO_PASSWORD)

    home = client.get("/metrics/")
    assert home.status_code == 200
    assert "Support tickets resolved" in home.content.decode()
    for key, subject in [
        ("tickets-resolved", "support-tier-1"),
        ("prs-merged", "payments"),
        ("tickets-triaged", "support-triage"),
    ]:
        response = client.get(f"/metrics/{key}/?subject={subject}")
        assert response.status_code == 200, key
    platform = client.get("/metrics/prs-merged/?subject=platform")
    assert platform.context["rows"][0]["payroll"].share is not None  # loaded costs are in place
    assert "observational — not proof of cause" in platform.content.decode()
