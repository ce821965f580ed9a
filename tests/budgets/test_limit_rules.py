"""Who may set which limit (TESTPLAN F6, F7), and the audit trail of every change and refusal (J1, J3)."""

from __future__ import annotations

import pytest
from django.http import Http404

from apps.accounts.models import Role
from apps.budgets import services
from apps.budgets.models import AuditAction, BudgetAudit, Limit, ScopeKind
from tests.budgets.conftest import actor_of, limit_on, make_user

USD = 1_000_000_000


def audit_actions() -> list[tuple[str, str]]:
    return list(BudgetAudit.objects.order_by("pk").values_list("actor_label", "action"))


def test_a_manager_cannot_touch_another_teams_limit(client, teams, people, system, eng_lead, acme):
    sales_limit = limit_on(system, team=teams["sales"], amount=10 * USD)
    lead = make_user(acme, "platform.only@acme.example", Role.MANAGER, manages=[teams["platform"]])
    client.force_login(lead)

    assert client.get(f"/budgets/{sales_limit.pk}/").status_code == 404
    response = client.post(f"/budgets/{sales_limit.pk}/edit/", {"amount": "99", "thresholds": "50"})
    assert response.status_code == 404
    assert client.post(f"/budgets/{sales_limit.pk}/deactivate/").status_code == 404
    # F6: another team's id in the form is not a choice at all; nothing is written.
    response = client.post(
        "/budgets/new/",
        {"scope_kind": "team", "team": teams["payments"].pk, "unit": "usd", "amount": "5", "period": "month",
         "thresholds": "50, 80, 100"},
    )  # fmt: skip
    assert response.status_code == 400
    with pytest.raises(Http404):
        limit_on(actor_of(lead), team=teams["payments"], amount=5 * USD)

    sales_limit.refresh_from_db()
    assert (sales_limit.amount, sales_limit.is_active, Limit.objects.count()) == (10 * USD, True, 1)
    refusals = BudgetAudit.objects.filter(
        action=AuditAction.REFUSED, actor_label="platform.only@acme.example"
    )
    assert refusals.count() == 3  # edit, deactivate, create through the service (the form never got there)


def test_a_manager_stays_within_what_the_parent_team_allows(client, teams, people, system, eng_lead, acme):
    limit_on(system, team=teams["engineering"], include_subteams=True, amount=10 * USD)
    client.force_login(eng_lead)
    form = {"scope_kind": "team", "team": teams["platform"].pk, "unit": "usd", "period": "month",
            "thresholds": "50, 80, 100"}  # fmt: skip

    response = client.post("/budgets/new/", {**form, "amount": "20"})
    assert response.status_code == 403
    assert "above the monthly limit of $10.00 that the Engineering team (with its sub-teams) allows" in (
        response.content.decode()
    )
    assert not Limit.objects.filter(team=teams["platform"]).exists()

    assert client.post("/budgets/new/", {**form, "amount": "8"}).status_code == 302
    platform = Limit.objects.get(team=teams["platform"])
    # Raising it later is held to the same ceiling; a per-person default in Platform too.
    with pytest.raises(services.LimitRefused):
        services.limit_update(actor=actor_of(eng_lead), limit_id=platform.pk, amount=11 * USD)
    with pytest.raises(services.LimitRefused):
        limit_on(actor_of(eng_lead), kind=ScopeKind.PERSON_DEFAULT, team=teams["platform"], amount=12 * USD)
    platform.refresh_from_db()
    assert platform.amount == 8 * USD
    # A CIO sets the ceilings themselves, and is not held to them.
    services.limit_update(actor=system, limit_id=platform.pk, amount=12 * USD)
    platform.refresh_from_db()
    assert platform.amount == 12 * USD


def test_nobody_raises_a_limit_that_applies_to_themself(client, teams, people, system, platform_lead, acme):
    platform = limit_on(system, team=teams["platform"], amount=5 * USD)
    own = limit_on(system, person=people["alice"], amount=3 * USD)
    client.force_login(platform_lead)

    response = client.post(f"/budgets/{platform.pk}/edit/", {"amount": "6", "thresholds": "50, 80, 100"})
    assert response.status_code == 403
    assert "nobody raises a limit that applies to themself" in response.content.decode()
    assert client.post(f"/budgets/{own.pk}/edit/", {"amount": "30", "thresholds": "50"}).status_code == 403
    assert client.post(f"/budgets/{platform.pk}/deactivate/").status_code == 403
    platform.refresh_from_db()
    own.refresh_from_db()
    assert (platform.amount, platform.is_active, own.amount) == (5 * USD, True, 3 * USD)

    # Lowering is fine.
    assert (
        client.post(f"/budgets/{platform.pk}/edit/", {"amount": "4", "thresholds": "50, 80, 100"}).status_code
        == 302
    )
    platform.refresh_from_db()
    assert platform.amount == 4 * USD
    # Not even the CIO raises a limit on their own team.
    cio = make_user(acme, "cio@acme.example", Role.CIO, person=people["bob"])
    payments = limit_on(system, team=teams["payments"], amount=5 * USD)
    with pytest.raises(services.LimitRefused):
        services.limit_update(actor=actor_of(cio), limit_id=payments.pk, amount=6 * USD)
    assert [action for _, action in audit_actions()].count(AuditAction.REFUSED) == 4


def test_every_change_writes_exactly_one_audit_row(client, teams, people, acme):
    cio = make_user(acme, "cio@acme.example", Role.CIO)
    client.force_login(cio)
    response = client.post(
        "/budgets/new/",
        {"scope_kind": "team", "team": teams["platform"].pk, "unit": "usd", "amount": "1500", "period": "month",
         "thresholds": "50, 80, 100", "notify_emails": "lead@acme.example"},
        headers={"X-Request-Id": "req-create-1"},
    )  # fmt: skip
    assert response.status_code == 302
    limit = Limit.objects.get()
    client.post(
        f"/budgets/{limit.pk}/edit/",
        {"amount": "1200", "thresholds": "60, 90", "notify_emails": "lead@acme.example"},
        headers={"X-Request-Id": "req-edit-1"},
    )
    client.post(f"/budgets/{limit.pk}/edit/", {"amount": "1200", "thresholds": "60, 90",
                                               "notify_emails": "lead@acme.example"})  # fmt: skip
    client.post(f"/budgets/{limit.pk}/deactivate/")

    rows = list(BudgetAudit.objects.order_by("pk"))
    assert [row.action for row in rows] == [AuditAction.CREATED, AuditAction.UPDATED, AuditAction.DEACTIVATED]
    created, updated, deactivated = rows
    assert (created.actor, created.actor_label, created.organisation, created.limit) == (
        cio,
        "cio@acme.example",
        acme,
        limit,
    )
    assert (created.before, created.after["amount"], created.request_id) == (None, 1500 * USD, "req-create-1")
    assert (updated.before["amount"], updated.after["amount"]) == (1500 * USD, 1200 * USD)
    assert (updated.before["thresholds"], updated.after["thresholds"]) == ([50, 80, 100], [60, 90])
    assert updated.request_id == "req-edit-1"
    assert (deactivated.before["is_active"], deactivated.after["is_active"]) == (True, False)
    assert all(row.created_at.utcoffset().total_seconds() == 0 for row in rows)


def test_the_history_is_for_cio_finops_and_the_teams_managers(client, teams, people, system, acme):
    limit = limit_on(system, team=teams["platform"], amount=5 * USD)
    services.limit_update(actor=system, limit_id=limit.pk, amount=4 * USD)
    member = make_user(acme, "alice@acme.example", Role.MEMBER, person=people["alice"])
    lead = make_user(acme, "lead@acme.example", Role.MANAGER, manages=[teams["platform"]])
    client.force_login(lead)
    assert len(client.get(f"/budgets/{limit.pk}/").context["audits"]) == 2
    client.force_login(member)
    assert client.get(f"/budgets/{limit.pk}/").status_code == 404  # a team limit is not a member's to see
    own = limit_on(system, person=people["alice"], amount=3 * USD)
    response = client.get(f"/budgets/{own.pk}/")
    assert response.status_code == 200
    assert list(response.context["audits"]) == []
