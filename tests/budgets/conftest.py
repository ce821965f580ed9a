"""Budgets: the cast of tests/conftest.py (Acme, its teams and people) plus usage at chosen times."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model

from apps.accounts.models import Membership, Role
from apps.accounts.scoping import organisation_viewer, viewer_for_user
from apps.budgets import services
from apps.budgets.api import forget_cached_keys
from apps.budgets.models import Limit, Period, ScopeKind, Unit
from apps.budgets.selectors import check_snapshots_forget, directory_forget
from tests.conftest import litellm_record, write_jsonl

ONE = 500_000  # nano-dollars of one test request (gpt-4.1-mini: 800 uncached + 200 cached + 100 output)
ONE_TOKENS = 1_100  # what a token limit counts of it (reasoning is part of output)
_ids = itertools.count()


@pytest.fixture(autouse=True)
def fresh_process_caches(settings):
    """The check API's per-process caches must not carry one test's keys, people or states into the next;
    and it looks at the state version on every check, so each answer follows the last refresh."""
    settings.SPENDWATCH_BUDGET_CHECK_POLL_MS = 0
    for forget in (directory_forget, forget_cached_keys, check_snapshots_forget):
        forget()
    yield
    for forget in (directory_forget, forget_cached_keys, check_snapshots_forget):
        forget()


@pytest.fixture
def usage(ingest, tmp_path) -> Callable[..., None]:
    """usage(("alice@acme.example", 3, when), ...): that many requests per user at that UTC time."""

    def load(*batches: tuple[str, int, dt.datetime], **overrides) -> None:
        records = [
            litellm_record(f"r{next(_ids)}", user=user, startTime=when.isoformat(), **overrides)
            for user, count, when in batches
            for _ in range(count)
        ]
        ingest("litellm_spend_logs", write_jsonl(tmp_path / f"batch{next(_ids)}.jsonl", records))

    return load


@pytest.fixture
def system(acme) -> services.Actor:
    return services.Actor(viewer=organisation_viewer(acme), label="tests")


def make_user(organisation, email: str, role: str, *, person=None, manages=()):
    user = get_user_model().objects.create_user(username=email, email=email, password="pw-for-tests-1")
    membership = Membership.objects.create(user=user, organisation=organisation, role=role, person=person)
    membership.managed_teams.set(manages)
    return user


def actor_of(user) -> services.Actor:
    return services.Actor(viewer=viewer_for_user(user), user=user, label=user.email)


@pytest.fixture
def platform_lead(acme, teams, people):
    """Manages Platform and works in it (as alice): Platform's own limits apply to her."""
    return make_user(
        acme, "alice.lead@acme.example", Role.MANAGER, person=people["alice"], manages=[teams["platform"]]
    )


@pytest.fixture
def eng_lead(acme, teams):
    return make_user(acme, "eng.lead@acme.example", Role.MANAGER, manages=[teams["engineering"]])


def limit_on(
    actor: services.Actor, *, amount: int, unit: str = Unit.USD, period: str = Period.MONTH, **scope
) -> Limit:
    """A limit through the service; scope: team=..., person=..., task=..., include_subteams=..., kind=..."""
    kind = scope.pop("kind", None)
    if kind is None:
        kind = (
            ScopeKind.PERSON if "person" in scope else ScopeKind.TASK if "task" in scope else ScopeKind.TEAM
        )
    return services.limit_create(
        actor=actor,
        spec=services.LimitSpec(scope_kind=kind, unit=unit, amount=amount, period=period, **scope),
    )
