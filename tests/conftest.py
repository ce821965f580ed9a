"""The cast: one organisation with a small team tree, and people with different rights.

Acme:  Engineering ─┬─ Platform   (alice)
                    └─ Payments   (bob)
       Sales ───────── EMEA       (carol)
Globex: another organisation with its own CIO (the outsider).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from django.contrib.auth import get_user_model

from apps.accounts.models import Membership, Role
from apps.ingestion.models import DataSource, IngestionRun
from apps.ingestion.services import ingest_files, source_get_or_create
from apps.org.models import Organisation, Person, Team

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sources"


@pytest.fixture
def acme(db) -> Organisation:
    return Organisation.objects.create(name="Acme", slug="acme", time_zone="UTC")


@pytest.fixture
def teams(acme) -> dict[str, Team]:
    engineering = Team.objects.create(organisation=acme, name="Engineering", slug="engineering")
    sales = Team.objects.create(organisation=acme, name="Sales", slug="sales")
    return {
        "engineering": engineering,
        "platform": Team.objects.create(
            organisation=acme, name="Platform", slug="platform", parent=engineering
        ),
        "payments": Team.objects.create(
            organisation=acme, name="Payments", slug="payments", parent=engineering
        ),
        "sales": sales,
        "emea": Team.objects.create(organisation=acme, name="EMEA", slug="emea", parent=sales),
    }


@pytest.fixture
def people(acme, teams) -> dict[str, Person]:
    def person(name: str, team: str) -> Person:
        return Person.objects.create(
            organisation=acme, name=name.title(), email=f"{name}@acme.example", team=teams[team]
        )

    return {
        "alice": person("alice", "platform"),
        "bob": person("bob", "payments"),
        "carol": person("carol", "emea"),
    }


@pytest.fixture(autouse=True)
def _mfa_policy_off(settings) -> None:
    """The "MFA required" policy is proved in tests/accounts (its conftest turns it back on); elsewhere
    tests log people in with force_login to test other things, without an authenticator."""
    settings.SPENDWATCH_MFA_REQUIRED_ROLES = []


def _login(client, email: str, organisation: Organisation, role: str, *, person=None, manages=()):
    user = get_user_model().objects.create_user(username=email, email=email, password="pw-for-tests-1")
    membership = Membership.objects.create(user=user, organisation=organisation, role=role, person=person)
    membership.managed_teams.set(manages)
    client.force_login(user)
    return client


@pytest.fixture
def as_persona(acme, teams, people, client) -> Callable:
    """as_persona("cio" | "finops" | "eng_manager" | "platform_manager" | "alice" | "outsider") -> client."""

    def login(name: str):
        if name == "cio":
            return _login(client, "cio@acme.example", acme, Role.CIO)
        if name == "finops":
            return _login(client, "finops@acme.example", acme, Role.FINOPS)
        if name == "eng_manager":
            return _login(client, "eng.lead@acme.example", acme, Role.MANAGER, manages=[teams["engineering"]])
        if name == "platform_manager":
            return _login(
                client, "platform.lead@acme.example", acme, Role.MANAGER, manages=[teams["platform"]]
            )
        if name == "alice":
            return _login(client, "alice@acme.example", acme, Role.MEMBER, person=people["alice"])
        if name == "outsider":
            globex = Organisation.objects.create(name="Globex", slug="globex")
            return _login(client, "cio@globex.example", globex, Role.CIO)
        raise ValueError(name)

    return login


def litellm_record(request_id: str, **overrides) -> dict:
    """A LiteLLM spend-log record (gpt-4.1-mini, 1,000 prompt tokens incl. 200 cached, 100 output)."""
    record = {
        "request_id": request_id,
        "startTime": "2026-08-03T10:00:00+00:00",
        "model": "gpt-4.1-mini-2025-04-14",
        "custom_llm_provider": "openai",
        "user": "",
        "team_id": None,
        "spend": 0.00052,
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "status": "success",
        "cache_hit": "False",
        "request_tags": [],
        "metadata": {
            "usage_object": {
                "prompt_tokens": 1000,
                "completion_tokens": 100,
                "prompt_tokens_details": {"cached_tokens": 200},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
            "spend_logs_metadata": {},
        },
    }
    record.update(overrides)
    return record


def write_jsonl(path: Path, records: list) -> Path:
    with path.open("wb") as handle:
        for record in records:
            handle.write(record if isinstance(record, bytes) else orjson.dumps(record))
            handle.write(b"\n")
    return path


@pytest.fixture
def ingest(acme) -> Callable[..., IngestionRun]:
    """ingest(format, *paths, source="name") through the real pipeline, synchronously."""

    def run(format: str, *paths: Path, source: str | None = None) -> IngestionRun:
        data_source: DataSource = source_get_or_create(
            organisation=acme, name=source or format, format=format
        )
        return ingest_files(source=data_source, format=format, paths=list(paths))

    return run
