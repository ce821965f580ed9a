"""ROI tests: the cast of tests/conftest.py (Acme, its teams and people), metrics, and spend placed on
chosen days as daily rollups (the table every ROI figure reads), so totals are known to the nano-dollar."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from decimal import Decimal

import pytest

from apps.accounts.models import KeyScope
from apps.accounts.scoping import organisation_viewer
from apps.accounts.services import machine_key_create
from apps.catalog.models import AIModel, Provider
from apps.metrics import services
from apps.metrics.models import Adoption, Aggregation, Direction, Metric, MetricGrain, MetricScope
from apps.org.models import Person, Team
from apps.usage.models import DailyRollup

NANOS = 1_000_000_000
MONDAYS = [dt.date(2026, 6, 1) + dt.timedelta(weeks=i) for i in range(8)]
ADOPTED = MONDAYS[4]  # 29 June 2026: four weeks before, four after
WIGGLE = [1, -1, 1, -1, 1, -1, 1, -1]


def usd(text: str) -> int:
    """'123.45' -> nano-dollars, exactly."""
    return int(Decimal(text) * NANOS)


@pytest.fixture
def spend(acme) -> Callable[..., None]:
    """spend(day, "12.34", team=..., person=..., task=...): one rollup row of that cost."""
    provider = Provider.objects.create(slug="test-provider", name="Test provider")
    model = AIModel.objects.create(provider=provider, name="test-model")

    def add(day: dt.date, amount: str, *, team=None, person=None, task=None, requests: int = 1) -> None:
        DailyRollup.objects.create(
            organisation=acme,
            day=day,
            team=team or (person.team if person else None),
            person=person,
            task=task,
            provider=provider,
            model=model,
            fact_rows=1,
            unpriced_rows=0,
            failed_rows=0,
            requests=requests,
            cost_nanos=usd(amount),
        )

    return add


@pytest.fixture
def prs_merged(acme) -> Metric:
    return Metric.objects.create(
        organisation=acme,
        key="prs-merged",
        name="Pull requests merged",
        unit="PRs",
        direction=Direction.HIGHER,
        aggregation=Aggregation.SUM,
        grain=MetricGrain.WEEK,
        scope=MetricScope.TEAM,
        value_per_unit=Decimal("150"),
    )


@pytest.fixture
def put_values(acme) -> Callable[..., services.ImportResult]:
    """put_values(metric, [(team_slug, period, value), ...]) through the import service."""

    def put(metric: Metric, rows: list[tuple[str, str, object]], *, subject: str = "team"):
        raw = [
            services.RawRow("test", line, {subject: slug, "period": period, "value": value}, "")
            for line, (slug, period, value) in enumerate(rows, start=1)
        ]
        return services.metric_values_import(
            viewer=organisation_viewer(acme), rows=raw, source="test", metric=metric
        )

    return put


@pytest.fixture
def crowd(acme) -> Callable[[Team, int], list[Person]]:
    """crowd(team, n): n more active people in the team (the method compares teams of 5 or more)."""

    made = itertools.count(1)

    def add(team: Team, count: int) -> list[Person]:
        numbers = [next(made) for _ in range(count)]
        return [
            Person.objects.create(
                organisation=acme, name=f"{team.name} {n}", email=f"{team.slug}.{n}@acme.example", team=team
            )
            for n in numbers
        ]

    return add


@pytest.fixture
def ingest_key(acme) -> str:
    _, text = machine_key_create(organisation=acme, name="bi-export", scopes=[KeyScope.INGEST])
    return text


@pytest.fixture
def engineering_story(acme, teams, people, crowd, prs_merged, put_values) -> dict[str, Team]:
    """Platform (6 people, adopts 29 June) merges 3 more PRs per week after; Payments (5 people) does not.

    Per person: Payments 2.0, 2.1, ... (+0.1 a week); Platform the same plus 0.5 / -0.5 in turn, plus 0.5
    from the adoption week (3 PRs / 6 people). Gaps before [0.5, -0.5, 0.5, -0.5], after [1, 0, 1, 0]:
    estimate 0.5 PRs per person per week; Welch df 6, half width t(0.975, 6) x sqrt(1/6).
    """
    return _engineering(acme, teams, crowd, prs_merged, put_values, lift=Decimal("0.5"))


@pytest.fixture
def flat_engineering_story(acme, teams, people, crowd, prs_merged, put_values) -> dict[str, Team]:
    """The same teams, but Platform's PRs do not move after its adoption date."""
    return _engineering(acme, teams, crowd, prs_merged, put_values, lift=Decimal(0))


def _engineering(acme, teams, crowd, prs_merged, put_values, *, lift: Decimal) -> dict[str, Team]:
    crowd(teams["platform"], 5)  # + alice = 6
    crowd(teams["payments"], 4)  # + bob = 5
    Adoption.objects.create(organisation=acme, team=teams["platform"], adopted_on=ADOPTED)
    rows = []
    for i, monday in enumerate(MONDAYS):
        payments = Decimal("2.0") + Decimal("0.1") * i
        platform = payments + Decimal("0.5") * WIGGLE[i] + (lift if monday >= ADOPTED else 0)
        rows.append(("payments", monday.isoformat(), payments * 5))
        rows.append(("platform", monday.isoformat(), platform * 6))
    assert put_values(prs_merged, rows).rejected == 0
    return teams
