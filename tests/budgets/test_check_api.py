"""GET /api/v1/budgets/check/: answers from the precomputed state, equal to the ledger to the cent;
only gateway keys of the organisation get them; fail open or closed when the ledger is unavailable."""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone

from apps.accounts.scoping import organisation_viewer
from apps.accounts.services import machine_key_create
from apps.budgets import services
from apps.budgets.models import ScopeKind
from apps.budgets.periods import local_today, period_bounds
from apps.org.models import Identity, IdentityKind, Organisation
from apps.usage.selectors import spend
from tests.budgets.conftest import ONE, limit_on

URL = "/api/v1/budgets/check/"


def cents(text: str) -> Decimal:
    return Decimal(text).quantize(Decimal("0.01"))


@pytest.fixture
def gateway_key(acme) -> str:
    return machine_key_create(organisation=acme, name="gateway", scopes=["gateway"])[1]


@pytest.fixture
def budgets(acme, teams, people, usage, system):
    """Today: alice 3, bob 2, carol 1. Engineering (with sub-teams) may spend 4, Platform 100, carol 10."""
    now = timezone.now()
    usage(("alice@acme.example", 3, now), ("bob@acme.example", 2, now), ("carol@acme.example", 1, now))
    limits = {
        "engineering": limit_on(system, team=teams["engineering"], include_subteams=True, amount=4 * ONE),
        "platform": limit_on(system, team=teams["platform"], amount=100 * ONE),
        "carol": limit_on(system, person=people["carol"], amount=10 * ONE),
    }
    services.state_refresh(organisation_id=acme.pk)
    return limits


def check(client, key: str | None, **params):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.get(URL, params, headers=headers)


def ledger_usd(acme, team_ids) -> str:
    start, end = period_bounds("month", local_today(acme.time_zone))
    groups = spend(organisation_viewer(acme), group_by="team", start=start, end=end, team_ids=team_ids)
    return f"{Decimal(sum(group.cost_nanos for group in groups)).scaleb(-9):.9f}"


def test_the_tightest_limit_answers_and_equals_the_ledger(client, acme, teams, budgets, gateway_key):
    response = check(client, gateway_key, person="alice@acme.example", model="gpt-4.1-mini")
    assert response.status_code == 200
    body = response.json()
    subtree = frozenset(teams[slug].pk for slug in ("engineering", "platform", "payments"))
    start, end = period_bounds("month", local_today(acme.time_zone))
    assert body == {
        "allowed": False,
        "scope": "team:engineering",
        "limit_usd": "0.002000000",
        "spent_usd": "0.002500000",
        "remaining_usd": "-0.000500000",
        "unit": "usd",
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
    }
    assert body["spent_usd"] == ledger_usd(acme, subtree)
    assert cents(body["spent_usd"]) == Decimal("0.00")  # and therefore to the cent

    carol = check(client, gateway_key, person="carol@acme.example").json()
    assert (carol["allowed"], carol["scope"], carol["spent_usd"], carol["remaining_usd"]) == (
        True,
        "person:carol@acme.example",
        "0.000500000",
        "0.004500000",
    )


def test_identifiers_resolve_like_attribution(client, acme, teams, people, budgets, gateway_key):
    Identity.objects.create(
        organisation=acme, kind=IdentityKind.GATEWAY_TEAM, value="team-9f2", team=teams["platform"]
    )
    Identity.objects.create(organisation=acme, kind=IdentityKind.USER, value="u-77", person=people["carol"])
    by_identity = check(client, gateway_key, team="team-9f2").json()
    by_slug = check(client, gateway_key, team="platform").json()
    assert by_identity == by_slug
    assert by_identity["scope"] == "team:engineering"  # the parent's limit is the tighter one
    assert check(client, gateway_key, person="u-77").json()["scope"] == "person:carol@acme.example"
    unknown = check(client, gateway_key, person="nobody@acme.example").json()
    assert unknown == {
        "allowed": True,
        "scope": None,
        "limit_usd": None,
        "spent_usd": None,
        "remaining_usd": None,
        "unknown": ["person"],
    }


def test_answers_follow_each_ingestion(
    client, acme, teams, usage, budgets, gateway_key, django_capture_on_commit_callbacks
):
    before = check(client, gateway_key, team="platform").json()
    with django_capture_on_commit_callbacks(execute=True):
        usage(("alice@acme.example", 7, timezone.now()))
    after = check(client, gateway_key, team="platform").json()
    subtree = frozenset(teams[slug].pk for slug in ("engineering", "platform", "payments"))
    assert (before["spent_usd"], after["spent_usd"]) == ("0.002500000", "0.006000000")
    assert after["spent_usd"] == ledger_usd(acme, subtree)


def test_only_gateway_keys_of_the_organisation_are_answered(client, acme, people, budgets, gateway_key):
    ingest_key = machine_key_create(organisation=acme, name="exporter", scopes=["ingest"])[1]
    globex = Organisation.objects.create(name="Globex", slug="globex")
    other_gateway = machine_key_create(organisation=globex, name="their gateway", scopes=["gateway"])[1]

    assert check(client, None, person="alice@acme.example").status_code == 401
    assert check(client, "sw_forged_key", person="alice@acme.example").status_code == 401
    assert check(client, ingest_key, person="alice@acme.example").status_code == 403
    assert check(client, gateway_key, person="alice@acme.example").status_code == 200
    # TESTPLAN F9: another organisation's gateway learns nothing about ours.
    theirs = check(client, other_gateway, person="alice@acme.example", team="platform").json()
    assert (theirs["allowed"], theirs["scope"], theirs["spent_usd"], theirs["unknown"]) == (
        True,
        None,
        None,
        ["person", "team"],
    )
    # The key also works in X-Api-Key.
    assert client.get(URL, {"team": "platform"}, headers={"X-Api-Key": gateway_key}).status_code == 200


def test_a_warm_check_reads_one_version_number_or_nothing(
    client, budgets, gateway_key, settings, django_assert_num_queries
):
    check(client, gateway_key, person="alice@acme.example")  # warms the key, directory and state caches
    with django_assert_num_queries(1):  # polling on every check: the state version, unchanged
        assert check(client, gateway_key, person="alice@acme.example", task="code-review").status_code == 200
    settings.SPENDWATCH_BUDGET_CHECK_POLL_MS = 60_000
    with django_assert_num_queries(0):
        assert check(client, gateway_key, person="alice@acme.example", task="code-review").status_code == 200


@pytest.mark.parametrize("fail_open", [True, False])
def test_without_the_ledger_it_fails_open_or_closed_as_configured(
    client, budgets, gateway_key, settings, fail_open
):
    settings.SPENDWATCH_BUDGET_CHECK_FAIL_OPEN = fail_open
    check(client, gateway_key, team="platform")
    with mock.patch(
        "apps.budgets.selectors.check_snapshot", side_effect=OperationalError("server closed the connection")
    ):
        body = check(client, gateway_key, team="platform").json()
    assert (body["allowed"], body["degraded"], body["scope"]) == (fail_open, True, None)

    # A key never seen cannot be verified without the database: 503, with the same answer.
    with mock.patch(
        "apps.budgets.api.MachineKeyAuthentication.authenticate",
        side_effect=OperationalError("database down"),
    ):
        fresh = machine_key_create(
            organisation=budgets["platform"].organisation, name="g2", scopes=["gateway"]
        )[1]
        response = check(client, fresh, team="platform")
    assert response.status_code == 503
    assert (response.json()["allowed"], response.json()["degraded"]) == (fail_open, True)


def test_a_switched_off_limit_stops_answering_at_once(client, acme, budgets, gateway_key, system):
    services.limit_deactivate(actor=system, limit_id=budgets["engineering"].pk)
    body = check(client, gateway_key, person="alice@acme.example").json()
    assert (body["allowed"], body["scope"]) == (True, "team:platform")


def test_token_limits_answer_in_tokens(client, acme, teams, people, budgets, gateway_key, system):
    limit_on(system, kind=ScopeKind.TEAM, team=teams["emea"], unit="tokens", amount=1_000)
    services.state_refresh(organisation_id=acme.pk)
    body = check(client, gateway_key, person="carol@acme.example").json()
    tokens = (
        body["scope"],
        body["unit"],
        body["limit_tokens"],
        body["spent_tokens"],
        body["remaining_tokens"],
    )
    assert tokens == ("team:emea", "tokens", 1_000, 1_100, -100)  # tighter than carol's own USD limit
    assert body["limit_usd"] is None and body["allowed"] is False
