"""Budgets for the demo organisation: teams under, near and over their limits, with forecasts and alerts.

Amounts are derived from the demo's own ledger (this month's spend and its projection), rounded to two
significant figures, so the picture holds whatever day the demo is loaded on. Safe to run again: limits are
found by scope, unit and period, and an unchanged amount is no change (no audit row).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass

from apps.accounts.scoping import organisation_viewer
from apps.budgets import services
from apps.budgets.forecast import project
from apps.budgets.models import Alert, Limit, LimitState, Period, ScopeKind, Unit
from apps.budgets.periods import local_today, period_bounds
from apps.budgets.selectors import budget_settings_get, daily_amounts, ledger_first_day, team_tree
from apps.org.models import Organisation, Person, Task, Team
from apps.usage.models import NANOS_PER_USD

FISCAL_YEAR_START_MONTH = 4  # Northwind is a UK company: its fiscal year starts in April
ALERT_EMAILS = "finops@northwind.example"
DEMO_MEMBER = "dana.kowalski@northwind.example"


@dataclass(frozen=True, slots=True)
class DemoBudgets:
    limits: int
    under: int
    near: int
    over: int
    alerts: int

    def summary(self) -> str:
        return (
            f"Budgets: {self.limits} limits ({self.over} over, {self.near} near, {self.under} under), "
            f"{self.alerts} alerts raised"
        )


def _nice(value: float, unit: str) -> int:
    """Two significant figures, as a stored amount (nano-dollars or tokens)."""
    value = max(value, 10.0 if unit == Unit.USD else 1000.0)
    step = 10 ** (math.floor(math.log10(value)) - 1)
    rounded = round(value / step) * step
    return int(rounded * NANOS_PER_USD) if unit == Unit.USD else int(rounded)


class _Ledger:
    """The demo ledger per team subtree and per person, as the limits will count it."""

    def __init__(self, organisation: Organisation, today: dt.date, start: dt.date) -> None:
        self.organisation, self.today = organisation, today
        self.tree = team_tree(organisation.pk)
        self.data_start = ledger_first_day(organisation.pk)
        self.teams = daily_amounts(organisation.pk, "team", days=None, start=start, end=today)
        self.people = daily_amounts(organisation.pk, "person", days=None, start=start, end=today)

    def series(self, team: Team, *, subteams: bool, tokens: bool = False) -> dict[dt.date, int]:
        covered = self.tree.subtree(team.pk) if subteams else {team.pk}
        daily: dict[dt.date, int] = defaultdict(int)
        for (team_id, day), (cost, token_count) in self.teams.items():
            if team_id in covered:
                daily[day] += token_count if tokens else cost
        return daily

    def person_series(self, person_id: int) -> dict[dt.date, int]:
        return {day: cost for (pk, day), (cost, _) in self.people.items() if pk == person_id}

    def outlook(self, daily: dict[dt.date, int], period: tuple[dt.date, dt.date]) -> tuple[float, float]:
        """(spent so far, projected at period end), in stored units."""
        forecast = project(
            daily, period_start=period[0], period_end=period[1], today=self.today, data_start=self.data_start
        )
        spent = sum(amount for day, amount in daily.items() if period[0] <= day <= self.today)
        return float(spent), float(forecast.projected if forecast else spent)


def seed_demo_limits(organisation: Organisation) -> DemoBudgets:
    settings_row = budget_settings_get(organisation)
    settings_row.fiscal_year_start_month = FISCAL_YEAR_START_MONTH
    settings_row.alert_emails = ALERT_EMAILS
    settings_row.save(update_fields=["fiscal_year_start_month", "alert_emails"])

    today = local_today(organisation.time_zone)
    month = period_bounds(Period.MONTH, today)
    quarter = period_bounds(Period.QUARTER, today, fiscal_year_start_month=FISCAL_YEAR_START_MONTH)
    year = period_bounds(Period.FISCAL_YEAR, today, fiscal_year_start_month=FISCAL_YEAR_START_MONTH)
    ledger = _Ledger(organisation, today, min(year[0], month[0]) - dt.timedelta(days=60))
    teams = {team.slug: team for team in Team.objects.filter(organisation=organisation)}
    actor = services.Actor(viewer=organisation_viewer(organisation), label="demo loader")

    def usd(dollars_nanos: float) -> float:
        return dollars_nanos / NANOS_PER_USD

    def ensure(spec: services.LimitSpec) -> Limit:
        existing = Limit.objects.filter(
            organisation=organisation,
            is_active=True,
            scope_kind=spec.scope_kind,
            team=spec.team,
            person=spec.person,
            task=spec.task,
            unit=spec.unit,
            period=spec.period,
        ).first()
        if existing is None:
            return services.limit_create(actor=actor, spec=spec)
        return services.limit_update(actor=actor, limit_id=existing.pk, amount=spec.amount)

    bounds = {Period.MONTH: month, Period.QUARTER: quarter, Period.FISCAL_YEAR: year}

    def team_limit(slug: str, kind: str, factor: float, *, basis: str, subteams: bool = False, unit=Unit.USD):
        period = bounds[kind]
        daily = ledger.series(teams[slug], subteams=subteams, tokens=unit == Unit.TOKENS)
        spent, projected = ledger.outlook(daily, period)
        value = (spent if basis == "spent" else projected) * factor
        amount = _nice(usd(value) if unit == Unit.USD else value, unit)
        return ensure(
            services.LimitSpec(
                scope_kind=ScopeKind.TEAM,
                team=teams[slug],
                include_subteams=subteams,
                unit=unit,
                amount=amount,
                period=kind,
            )
        )

    # Engineering's monthly budget leaves room; inside it Payments is over, Mobile close to its limit and
    # Data Science well under. Platform has an annual budget that, at this rate, runs out before the year does.
    team_limit("engineering", Period.MONTH, 1.3, basis="projected", subteams=True)
    team_limit("payments", Period.MONTH, 0.9, basis="spent")
    team_limit("mobile", Period.MONTH, 1 / 0.85, basis="spent")
    team_limit("data-science", Period.MONTH, 1.6, basis="projected")
    daily = ledger.series(teams["platform"], subteams=False)
    spent, projected = ledger.outlook(daily, year)
    ensure(
        services.LimitSpec(
            scope_kind=ScopeKind.TEAM,
            team=teams["platform"],
            unit=Unit.USD,
            amount=_nice(usd(spent + 0.5 * (projected - spent)), Unit.USD),
            period=Period.FISCAL_YEAR,
        )
    )
    team_limit("customer-support", Period.QUARTER, 1.3, basis="projected", subteams=True)
    team_limit("marketing", Period.MONTH, 1 / 0.82, basis="spent", unit=Unit.TOKENS)

    # Each engineer gets the same monthly allowance, set where the heaviest users (the token-maxers) pass it.
    engineers = Person.objects.filter(
        organisation=organisation, team__in=ledger.tree.subtree(teams["engineering"].pk)
    )
    month_spend = sorted(
        sum(amount for day, amount in ledger.person_series(pk).items() if month[0] <= day <= today)
        for pk in engineers.values_list("pk", flat=True)
    )
    if month_spend:
        ensure(
            services.LimitSpec(
                scope_kind=ScopeKind.PERSON_DEFAULT,
                team=teams["engineering"],
                include_subteams=True,
                unit=Unit.USD,
                amount=_nice(usd(month_spend[int(len(month_spend) * 0.95)]), Unit.USD),
                period=Period.MONTH,
            )
        )
    # The demo member has a personal limit of their own (which replaces the default for them).
    member = Person.objects.filter(organisation=organisation, email=DEMO_MEMBER).first()
    if member is not None:
        spent, projected = ledger.outlook(ledger.person_series(member.pk), month)
        ensure(
            services.LimitSpec(
                scope_kind=ScopeKind.PERSON,
                person=member,
                unit=Unit.USD,
                amount=_nice(usd(projected * 1.5), Unit.USD),
                period=Period.MONTH,
            )
        )
    # Agents refactoring whole repositories: the use case's monthly budget is already spent.
    refactoring = Task.objects.filter(organisation=organisation, key="refactoring").first()
    if refactoring is not None:
        task_daily: dict[dt.date, int] = defaultdict(int)
        for (task_id, day), (cost, _) in daily_amounts(
            organisation.pk, "task", days=None, start=month[0], end=today
        ).items():
            if task_id == refactoring.pk:
                task_daily[day] += cost
        spent, _ = ledger.outlook(task_daily, month)
        ensure(
            services.LimitSpec(
                scope_kind=ScopeKind.TASK, task=refactoring, unit=Unit.USD, amount=_nice(usd(spent * 0.8), Unit.USD),
                period=Period.MONTH,
            )
        )  # fmt: skip

    services.state_refresh(organisation_id=organisation.pk)
    states = LimitState.objects.filter(organisation=organisation, person__isnull=True)
    over = sum(1 for s in states if s.spent >= s.limit_amount)
    near = sum(
        1
        for s in states
        if s.spent < s.limit_amount
        and (s.spent * 100 >= 80 * s.limit_amount or (s.projected or 0) > s.limit_amount)
    )
    return DemoBudgets(
        limits=Limit.objects.filter(organisation=organisation, is_active=True).count(),
        under=states.count() - over - near,
        near=near,
        over=over,
        alerts=Alert.objects.filter(organisation=organisation).count(),
    )
