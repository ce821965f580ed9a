"""A small, complete world for the access tests: every kind of object a route can show, in two teams of
Acme and in a second organisation, and one HTTP client per persona (TESTPLAN F).

Acme:  Engineering ─┬─ Platform   (alice; dave, who manages Platform)   team "A1"
                    └─ Payments   (bob; erin, who manages Payments)     team "B"
       Sales ───────── EMEA       (carol)
Globex: its own CIO and team Ops (zed), with objects of every kind too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from apps.accounts.models import KeyScope, Membership, Role
from apps.accounts.scoping import organisation_viewer
from apps.accounts.services import machine_key_create
from apps.budgets import services as budget_services
from apps.budgets.api import forget_cached_keys
from apps.budgets.models import Alert, AlertKind, Limit, Period, ScopeKind, Unit
from apps.budgets.selectors import check_snapshots_forget, directory_forget
from apps.catalog.models import AIModel, ModelMapping, OverrideKind, PriceOverride, Provider
from apps.ingestion.models import BufferedRequest, DataSource, IngestionRun, PullSource
from apps.ingestion.services import ingest_files, source_get_or_create
from apps.metrics.models import Metric, MetricScope
from apps.org.models import AttributionRun, Identity, Organisation, PeopleImport, Person, Rule, Task, Team
from apps.overuse.models import PromptObservation
from apps.usage.models import UsageFact
from tests.conftest import litellm_record, write_jsonl

PERSONAS = ("anonymous", "member", "manager_a1", "manager_b", "cio", "outsider", "gateway", "ingest")
SIGNED_IN = ("member", "manager_a1", "manager_b", "cio", "outsider")
KEYS = ("gateway", "ingest")
ONE = 500_000  # nano-dollars per request of litellm_record (gpt-4.1-mini)
# Text only the owner of each request (and those above them) may ever be shown.
EXCERPTS = {
    "alice": "alice-private-prompt-7431",
    "bob": "bob-private-prompt-9920",
    "zed": "zed-private-prompt-5512",
}


@dataclass
class World:
    acme: Organisation
    globex: Organisation
    teams: dict[str, Team]
    people: dict[str, Person]
    ids: dict[str, object] = field(default_factory=dict)  # what route templates are filled with
    clients: dict[str, Client] = field(default_factory=dict)
    users: dict[str, object] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def _user(email: str, organisation: Organisation, role: str, *, person=None, manages=()):
    user = get_user_model().objects.create_user(username=email, email=email, password="pw-for-tests-1")
    membership = Membership.objects.create(user=user, organisation=organisation, role=role, person=person)
    membership.managed_teams.set(manages)
    # Managers and CIOs must hold a second factor before they see anything (apps/accounts/middleware.py).
    Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={"secret": "JBSWY3DPEHPK3PXP"})
    return user


def _ingest(organisation: Organisation, tmp_path, name: str, records: list[dict]) -> IngestionRun:
    source = source_get_or_create(organisation=organisation, name=name, format="litellm_spend_logs")
    return ingest_files(
        source=source, format="litellm_spend_logs", paths=[write_jsonl(tmp_path / f"{name}.jsonl", records)]
    )


def _observation(fact: UsageFact, excerpt: str) -> PromptObservation:
    return PromptObservation.objects.create(
        organisation_id=fact.organisation_id,
        source_id=fact.source_id,
        ts=fact.ts,
        record_key=fact.record_key,
        fact=fact,
        label="trivial",
        score=0.99,
        p_trivial=0.99,
        p_non_work=0.0,
        classifier_version="test",
        prompt_hash=excerpt,
        prompt_chars=len(excerpt),
        excerpt=excerpt,
    )


def _limit(organisation: Organisation, amount_usd: int, **scope) -> Limit:
    actor = budget_services.Actor(viewer=organisation_viewer(organisation), label="tests")
    kind = ScopeKind.PERSON if "person" in scope else ScopeKind.TEAM
    spec = budget_services.LimitSpec(
        scope_kind=kind, unit=Unit.USD, amount=amount_usd * 10**9, period=Period.MONTH, **scope
    )
    return budget_services.limit_create(actor=actor, spec=spec)


@pytest.fixture(autouse=True)
def fresh_check_caches(settings):
    """The check API caches keys, directories and states per process: none may leak between tests."""
    settings.SPENDWATCH_BUDGET_CHECK_POLL_MS = 0
    for forget in (directory_forget, forget_cached_keys, check_snapshots_forget):
        forget()
    yield
    for forget in (directory_forget, forget_cached_keys, check_snapshots_forget):
        forget()


@pytest.fixture
def world(acme, teams, people, tmp_path, settings, django_capture_on_commit_callbacks) -> World:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    globex = Organisation.objects.create(name="Globex", slug="globex", time_zone="UTC")
    ops = Team.objects.create(organisation=globex, name="Ops", slug="ops")
    dave = Person.objects.create(
        organisation=acme, name="Dave", email="dave@acme.example", team=teams["platform"]
    )
    erin = Person.objects.create(
        organisation=acme, name="Erin", email="erin@acme.example", team=teams["payments"]
    )
    zed = Person.objects.create(organisation=globex, name="Zed", email="zed@globex.example", team=ops)
    people = {**people, "dave": dave, "erin": erin, "zed": zed}
    world = World(acme=acme, globex=globex, teams={**teams, "ops": ops}, people=people)

    task = Task.objects.create(organisation=acme, key="code-review", name="Code review")
    Task.objects.create(organisation=globex, key="triage", name="Triage")
    now = timezone.now().replace(microsecond=0).isoformat()

    def records(user: str, count: int, prefix: str, **extra) -> list[dict]:
        return [litellm_record(f"{prefix}{i}", user=user, startTime=now, **extra) for i in range(count)]

    with django_capture_on_commit_callbacks(execute=True):
        acme_run = _ingest(
            acme,
            tmp_path,
            "gateway",
            [
                *records("alice@acme.example", 3, "a", request_tags=["task:code-review"]),
                *records("bob@acme.example", 2, "b"),
                *records("carol@acme.example", 1, "c"),
                *records("dave@acme.example", 1, "d"),
                # A model no price list knows: it lands in the unpriced queue.
                *records(
                    "alice@acme.example", 1, "m", model="acme-house-model", custom_llm_provider="openai"
                ),
                b'{"request_id": "broken", "startTime": "not a time"}',
            ],
        )
        globex_run = _ingest(globex, tmp_path, "globex-gateway", [
            *records("zed@globex.example", 4, "z"),
            b'{"request_id": "broken", "startTime": "not a time"}',
        ])  # fmt: skip
        limits = {
            "a1": _limit(acme, 100, team=teams["platform"]),
            "b": _limit(acme, 200, team=teams["payments"]),
            "dave": _limit(acme, 5, person=dave),
            "globex": _limit(globex, 300, team=ops),
        }
    assert acme_run.rejected == 1 and globex_run.rejected == 1
    for limit in (limits["b"], limits["globex"]):
        today = timezone.now().date()
        Alert.objects.create(
            organisation_id=limit.organisation_id, limit=limit, period_start=today.replace(day=1),
            period_end=today, kind=AlertKind.THRESHOLD, threshold=50, unit=Unit.USD, spent=ONE,
            limit_amount=limit.amount, message=f"alert of limit {limit.pk}",
        )  # fmt: skip

    facts = {
        f.person.email.split("@")[0]: f
        for f in UsageFact.objects.filter(person__isnull=False).select_related("person")
    }
    observations = {name: _observation(facts[name], text) for name, text in EXCERPTS.items()}
    openai = Provider.objects.get(slug="openai")
    unpriced = AIModel.objects.get(name="acme-house-model")
    metric = Metric.objects.create(
        organisation=acme, key="prs-merged", name="PRs merged", unit="PR", scope=MetricScope.TEAM
    )
    Metric.objects.create(
        organisation=globex, key="tickets-closed", name="Tickets", unit="ticket", scope=MetricScope.TEAM
    )

    def per_org(organisation: Organisation, team: Team, person: Person) -> dict:
        return {
            "rule": Rule.objects.create(organisation=organisation, field="user", pattern=f"^{person.email}$", team=team),
            "identity": Identity.objects.create(organisation=organisation, kind="user", value=f"x-{person.email}", person=person),
            "attribution_run": AttributionRun.objects.create(organisation=organisation, requested_by_label="tests", reason="tests"),
            "people_import": PeopleImport.objects.create(organisation=organisation, file_name="people.csv",
                                                         content="email,name,team\n", uploaded_by_label="tests"),
            "pull_source": PullSource.objects.create(organisation=organisation, name="OpenAI", provider="openai",
                                                     credential_ciphertext="-", credential_hint="…abcd", credential_fingerprint="-"),
            "override": PriceOverride.objects.create(organisation=organisation, kind=OverrideKind.DISCOUNT, provider=openai,
                                                     percent=Decimal(10), valid_from=dt.date(2026, 1, 1)),
            "mapping": ModelMapping.objects.create(organisation=organisation, raw_provider="openai",
                                                   raw_model=f"{organisation.slug}-alias", provider="openai", model="gpt-4o"),
            "receipt": BufferedRequest.objects.create(
                organisation=organisation, format="litellm_spend_logs", suffix=".jsonl", body=b"", body_sha256="-",
                source=DataSource.objects.create(organisation=organisation, name="push", format="litellm_spend_logs")),
        }  # fmt: skip

    world.ids = {
        "alice": people["alice"].pk, "bob": people["bob"].pk, "carol": people["carol"].pk, "dave": dave.pk,
        "zed": zed.pk, "task": task.pk, "run": acme_run.pk, "globex_run": globex_run.pk,
        "limit_a1": limits["a1"].pk, "limit_b": limits["b"].pk, "limit_dave": limits["dave"].pk,
        "limit_globex": limits["globex"].pk, "obs_alice": observations["alice"].pk,
        "obs_bob": observations["bob"].pk, "obs_zed": observations["zed"].pk, "unpriced_model": unpriced.pk,
        "metric": metric.key,
        **{name: obj.pk for name, obj in per_org(acme, teams["platform"], people["alice"]).items()},
        **{f"globex_{name}": obj.pk for name, obj in per_org(globex, ops, zed).items()},
    }  # fmt: skip

    users = {
        "member": _user("alice@acme.example", acme, Role.MEMBER, person=people["alice"]),
        "manager_a1": _user(
            "dave@acme.example", acme, Role.MANAGER, person=dave, manages=[teams["platform"]]
        ),
        "manager_b": _user("erin@acme.example", acme, Role.MANAGER, person=erin, manages=[teams["payments"]]),
        "cio": _user("cio@acme.example", acme, Role.CIO),
        "outsider": _user("cio@globex.example", globex, Role.CIO, person=zed),
    }
    world.users = users
    world.keys = {
        "gateway": machine_key_create(organisation=acme, name="gateway", scopes=[KeyScope.GATEWAY])[1],
        "ingest": machine_key_create(organisation=acme, name="exporter", scopes=[KeyScope.INGEST])[1],
        "globex_gateway": machine_key_create(organisation=globex, name="gw", scopes=[KeyScope.GATEWAY])[1],
    }
    for persona in PERSONAS:
        if persona in KEYS:
            client = Client(HTTP_AUTHORIZATION=f"Bearer {world.keys[persona]}")
        else:
            client = Client()
            if persona in users:
                client.force_login(users[persona])
        world.clients[persona] = client
    return world
