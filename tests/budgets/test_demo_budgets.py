"""The demo organisation's budgets: teams under, near and over their limits, with forecasts; idempotent."""

from __future__ import annotations

import pytest

from apps.budgets.demo import seed_demo_limits
from apps.budgets.models import Alert, AlertKind, BudgetAudit, Limit, LimitState
from apps.budgets.periods import local_today
from apps.ingestion import demo

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_the_demo_has_teams_under_near_and_over_with_forecasts(tmp_path):
    organisation = demo.load_demo(
        local_today(demo.ORG_TIME_ZONE), scale=0.05, directory=tmp_path
    ).organisation

    result = seed_demo_limits(organisation)

    assert result.limits == Limit.objects.filter(organisation=organisation).count() >= 9
    assert result.over >= 1 and result.near >= 1 and result.under >= 1
    assert LimitState.objects.filter(organisation=organisation, projected__isnull=False).exists()
    forecast_alerts = Alert.objects.filter(organisation=organisation, kind=AlertKind.FORECAST)
    assert forecast_alerts.exists()
    assert any(alert.message.startswith("At this rate the ") for alert in forecast_alerts)

    audits, alerts = BudgetAudit.objects.count(), Alert.objects.count()
    again = seed_demo_limits(organisation)
    assert again == result
    assert (BudgetAudit.objects.count(), Alert.objects.count()) == (audits, alerts)
