"""Budget pages: what each persona sees and may edit; the burn chart, the alert history."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.accounts.models import Role
from apps.budgets import services
from apps.budgets.models import BudgetSettings, Limit, ScopeKind
from tests.budgets.conftest import ONE, limit_on, make_user


@pytest.fixture
def setup(acme, teams, people, usage, system):
    usage(("alice@acme.example", 3, timezone.now()), ("bob@acme.example", 2, timezone.now()))
    limits = {
        "platform": limit_on(system, team=teams["platform"], amount=4 * ONE),
        "payments": limit_on(system, team=teams["payments"], amount=1 * ONE),
        "default": limit_on(
            system,
            kind=ScopeKind.PERSON_DEFAULT,
            team=teams["engineering"],
            include_subteams=True,
            amount=10 * ONE,
        ),
    }
    services.state_refresh(organisation_id=acme.pk)
    return limits


def test_the_cio_sees_every_limit_with_its_state(client, acme, setup):
    client.force_login(make_user(acme, "cio@acme.example", Role.CIO))
    response = client.get("/budgets/")
    assert response.status_code == 200
    rows = {row.limit.pk: row for row in response.context["rows"]}
    assert set(rows) == {limit.pk for limit in setup.values()}
    assert (rows[setup["platform"].pk].percent, rows[setup["platform"].pk].status) == (75, "under")
    assert (rows[setup["payments"].pk].spent_text, rows[setup["payments"].pk].status) == ("$0.00", "over")
    assert rows[setup["default"].pk].people_states == 2
    assert 'href="/budgets/settings/"' in response.content.decode()


def test_a_limit_page_has_its_burn_chart_alerts_and_edit_form(client, acme, setup):
    client.force_login(make_user(acme, "cio@acme.example", Role.CIO))
    response = client.get(f"/budgets/{setup['payments'].pk}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="chart-burn"' in page and "vendor/plotly.min.js" in page
    assert "The Payments team has reached the monthly budget" in page
    assert response.context["edit_form"] is not None
    default = client.get(
        f"/budgets/{setup['default'].pk}/", {"person": setup["default"].states.first().person_id}
    )
    assert default.status_code == 200 and len(default.context["people_rows"]) == 2


def test_a_team_manager_sees_their_teams_only(client, acme, teams, setup):
    client.force_login(make_user(acme, "lead@acme.example", Role.MANAGER, manages=[teams["platform"]]))
    rows = client.get("/budgets/").context["rows"]
    assert [row.limit.pk for row in rows] == [setup["platform"].pk]
    assert client.get(f"/budgets/{setup['payments'].pk}/").status_code == 404
    assert client.get(f"/budgets/{setup['default'].pk}/").status_code == 404  # set on Engineering, above them
    assert client.get("/budgets/settings/").status_code == 404


def test_a_member_sees_only_what_applies_to_them(client, acme, people, setup):
    client.force_login(make_user(acme, "alice@acme.example", Role.MEMBER, person=people["alice"]))
    response = client.get("/budgets/")
    assert [row.limit.pk for row in response.context["rows"]] == [setup["default"].pk]
    assert response.context["rows"][0].state.person == people["alice"]
    assert response.context["may_create"] is False
    detail = client.get(f"/budgets/{setup['default'].pk}/")
    assert [state.person for state in detail.context["states"]] == [people["alice"]]
    other = client.get(f"/budgets/{setup['default'].pk}/", {"person": people["bob"].pk})
    assert other.status_code == 404
    assert client.get("/budgets/new/").status_code == 404


def test_budget_settings_are_saved_and_audited(client, acme):
    client.force_login(make_user(acme, "finops@acme.example", Role.FINOPS))
    response = client.post(
        "/budgets/settings/",
        {"fiscal_year_start_month": "4", "alert_emails": "finops@acme.example",
         "webhook_url": "https://hooks.example/T000/B000/xyz"},
    )  # fmt: skip
    assert response.status_code == 302
    saved = BudgetSettings.objects.get(organisation=acme)
    assert (saved.fiscal_year_start_month, saved.webhook_url) == (4, "https://hooks.example/T000/B000/xyz")
    assert not Limit.objects.exists()
