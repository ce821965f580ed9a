"""Business outcomes for the demo organisation, so the ROI pages show both stories: outcomes that rose
after a team adopted AI (against teams that had not), and outcomes that did not move.

- Support Tier 1 rolled out a support copilot: tickets resolved per agent rise, reopened tickets fall;
  CSAT stays where it was. Support Tier 2 (no rollout) is its comparison.
- Platform and Payments rolled out the IDE assistant on the same day: Platform's merged PRs per engineer
  rise, Payments' (Opus by default, heavy spenders) do not. Mobile has not rolled it out; Data Science
  merges far fewer PRs per person and is too unlike them to be a comparison.
- Sales EMEA rolled out the sales assistant: deals closed do not move against Sales Americas; monthly
  revenue has too few months since the rollout to compare (the page says so instead of guessing).
- The support-triage task counts tickets triaged by the copilot (a task metric: cost per outcome only).

Values go through the same import path as an upload (services.metric_values_import), week by week
over the 26 whole weeks (6 whole months) before `today`. A value depends only on the metric, the team,
its period and the adoption date, never on the day of loading, so loading again changes nothing.
Noise comes in pairs of opposite sign (week 2k and 2k+1), so a team without a change never shows one
by chance in the comparison, whichever weeks the window holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from django.db.models import Count, Max
from django.utils import timezone

from apps.accounts.scoping import organisation_viewer
from apps.metrics.models import Adoption, Aggregation, Direction, Metric, MetricGrain, MetricScope
from apps.metrics.periods import period_label, periods_within
from apps.metrics.services import ImportResult, RawRow, metric_values_import
from apps.org.models import Organisation, Person, Team
from apps.usage.models import DailyRollup

DEMO_SEED = 20261120
WEEKS = 26
MONTHS = 6
WEEKS_SINCE_ADOPTION = 10  # whole weeks from the adoption date to `today`
ANCHOR = dt.date(2025, 12, 29)  # a Monday: week and month indices count from here, not from today
TREND_PER_WEEK = 0.002  # every team drifts up alike (parallel trends)
RAMP_WEEKS = 3  # a rollout reaches its full change over three weeks


@dataclass(frozen=True, slots=True)
class DemoMetric:
    key: str
    name: str
    unit: str
    direction: str
    aggregation: str
    grain: str
    scope: str
    value_per_unit: Decimal | None
    description: str


@dataclass(frozen=True, slots=True)
class DemoSeries:
    metric: str
    subject: str  # team slug, or task key for task metrics
    level: float  # per person per period for summed metrics, the value itself for averaged ones
    change: float  # relative change once the rollout is complete (0: does not move)
    noise: float  # relative size of the period-to-period noise
    decimals: int = 0


METRICS: tuple[DemoMetric, ...] = (
    DemoMetric(
        "tickets-resolved", "Support tickets resolved", "tickets", Direction.HIGHER, Aggregation.SUM,
        MetricGrain.WEEK, MetricScope.TEAM, Decimal("9.00"),
        "Tickets closed as resolved in the help desk, per team and week. A resolved ticket is valued at the "
        "cost of handling one by hand.",
    ),
    DemoMetric(
        "tickets-reopened", "Tickets reopened", "tickets", Direction.LOWER, Aggregation.SUM,
        MetricGrain.WEEK, MetricScope.TEAM, None, "Resolved tickets the customer reopened within 7 days.",
    ),
    DemoMetric(
        "csat", "Customer satisfaction (CSAT)", "points", Direction.HIGHER, Aggregation.MEAN,
        MetricGrain.WEEK, MetricScope.TEAM, None, "Average post-ticket survey score, 1 to 5.",
    ),
    DemoMetric(
        "prs-merged", "Pull requests merged", "PRs", Direction.HIGHER, Aggregation.SUM,
        MetricGrain.WEEK, MetricScope.TEAM, None, "Pull requests merged to main, per team and week.",
    ),
    DemoMetric(
        "deals-closed", "Deals closed", "deals", Direction.HIGHER, Aggregation.SUM,
        MetricGrain.WEEK, MetricScope.TEAM, Decimal("2400"), "Closed-won opportunities in the CRM.",
    ),
    DemoMetric(
        "new-revenue", "New revenue booked", "USD", Direction.HIGHER, Aggregation.SUM,
        MetricGrain.MONTH, MetricScope.TEAM, Decimal("1"), "First-year contract value of new deals.",
    ),
    DemoMetric(
        "tickets-triaged", "Tickets triaged by the support copilot", "tickets", Direction.HIGHER,
        Aggregation.SUM, MetricGrain.WEEK, MetricScope.TASK, Decimal("1.20"),
        "Tickets the copilot classified and routed without an agent touching them.",
    ),
)  # fmt: skip

SERIES: tuple[DemoSeries, ...] = (
    DemoSeries("tickets-resolved", "support-tier-1", 42.0, 0.18, 0.03),
    DemoSeries("tickets-resolved", "support-tier-2", 38.0, 0.0, 0.03),
    DemoSeries("tickets-reopened", "support-tier-1", 3.2, -0.25, 0.04),
    DemoSeries("tickets-reopened", "support-tier-2", 3.0, 0.0, 0.04),
    DemoSeries("csat", "support-tier-1", 4.31, 0.0, 0.012, decimals=2),
    DemoSeries("csat", "support-tier-2", 4.22, 0.0, 0.012, decimals=2),
    DemoSeries("prs-merged", "platform", 2.1, 0.12, 0.04),
    DemoSeries("prs-merged", "payments", 2.0, 0.0, 0.04),
    DemoSeries("prs-merged", "mobile", 1.95, 0.0, 0.04),
    DemoSeries("prs-merged", "data-science", 1.0, 0.0, 0.05),
    DemoSeries("deals-closed", "sales-emea", 1.1, 0.0, 0.04),
    DemoSeries("deals-closed", "sales-americas", 1.0, 0.0, 0.04),
    DemoSeries("new-revenue", "sales-emea", 21_000.0, 0.0, 0.05),
    DemoSeries("new-revenue", "sales-americas", 20_000.0, 0.0, 0.05),
    DemoSeries("tickets-triaged", "support-triage", 1_500.0, 0.6, 0.03),  # a task: the level is a total
)

ADOPTIONS: dict[str, str] = {
    "support-tier-1": "Support copilot rolled out in the help desk",
    "platform": "IDE assistant rolled out",
    "payments": "IDE assistant rolled out (Opus as the default model)",
    "sales-emea": "Sales assistant rolled out",
}
# Which team's rollout a task metric follows.
TASK_ADOPTION = {"support-triage": "support-tier-1"}

# Annual loaded cost (USD) by top-level team, for people the HR import has not given one.
LOADED_COST = {
    "engineering": 168_000,
    "customer-support": 61_000,
    "sales": 112_000,
    "marketing": 94_000,
    "finance": 121_000,
    "people": 88_000,
    "legal": 176_000,
    "operations": 79_000,
}


@dataclass(frozen=True, slots=True)
class DemoMetricsResult:
    metrics: int
    adoptions: int
    values: ImportResult
    costs_filled: int

    def summary(self) -> str:
        v = self.values
        return (
            f"Metrics: {self.metrics} definitions, {self.adoptions} adoption dates, {v.rows} values "
            f"({v.created} new, {v.updated} updated, {v.unchanged} unchanged, {v.rejected} rejected), "
            f"{self.costs_filled} loaded costs filled in"
        )


def _demo_today(organisation: Organisation) -> dt.date:
    """The last day with usage (the demo's own `today`), else the organisation's today."""
    last = DailyRollup.objects.filter(organisation=organisation).aggregate(day=Max("day"))["day"]
    return last or timezone.now().astimezone(ZoneInfo(organisation.time_zone)).date()


def adoption_date(today: dt.date) -> dt.date:
    """The Monday WEEKS_SINCE_ADOPTION whole weeks before the last whole week up to `today`."""
    last_week = periods_within(today - dt.timedelta(days=13), today, MetricGrain.WEEK)[-1]
    return last_week - dt.timedelta(weeks=WEEKS_SINCE_ADOPTION - 1)


def _index(period: dt.date, grain: str) -> int:
    if grain == MetricGrain.MONTH:
        return (period.year - ANCHOR.year) * 12 + period.month - ANCHOR.month
    return (period - ANCHOR).days // 7


def _noise(series: DemoSeries, index: int) -> float:
    """Pairs of opposite sign: the noise of periods 2k and 2k+1 cancels."""
    rng = random.Random(f"{DEMO_SEED}:{series.metric}:{series.subject}:{index // 2}")
    draw = rng.gauss(0.0, series.noise)
    return draw if index % 2 == 0 else -draw


def series_value(
    series: DemoSeries, period: dt.date, grain: str, people: int, adopted_on: dt.date | None
) -> Decimal:
    """The demo value of one period (deterministic)."""
    index = _index(period, grain)
    weeks_from_anchor = (period - ANCHOR).days / 7
    level = series.level * (1 + TREND_PER_WEEK) ** weeks_from_anchor
    if adopted_on is not None and period >= adopted_on and series.change:
        weeks_after = (period - adopted_on).days // 7
        level *= 1 + series.change * min(1.0, (weeks_after + 1) / RAMP_WEEKS)
    value = level * (1 + _noise(series, index)) * people
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-series.decimals), rounding=ROUND_HALF_EVEN)


def _fill_loaded_costs(organisation: Organisation) -> int:
    """A loaded cost for demo people who have none (an HR import's figures are never overwritten)."""
    teams = {team.pk: team for team in Team.objects.filter(organisation=organisation)}

    def top(team: Team) -> str:
        while team.parent_id is not None:
            team = teams[team.parent_id]
        return team.slug

    missing = list(
        Person.objects.filter(organisation=organisation, annual_loaded_cost__isnull=True, team__isnull=False)
    )
    for person in missing:
        base = LOADED_COST.get(top(teams[person.team_id]), 90_000)
        spread = int(hashlib.blake2b(person.email.encode(), digest_size=2).hexdigest(), 16) / 65535  # 0..1
        person.annual_loaded_cost = Decimal(round(base * (0.88 + 0.24 * spread) / 500) * 500)
    Person.objects.bulk_update(missing, ["annual_loaded_cost"], batch_size=500)
    return len(missing)


def seed_demo_metrics(organisation: Organisation, *, today: dt.date | None = None) -> DemoMetricsResult:
    """Define the demo metrics, record the rollout dates and store 26 weeks of values; safe to repeat."""
    today = today or _demo_today(organisation)
    adopted_on = adoption_date(today)
    metrics = {}
    for spec in METRICS:
        metrics[spec.key], _ = Metric.objects.update_or_create(
            organisation=organisation,
            key=spec.key,
            defaults={
                "name": spec.name,
                "unit": spec.unit,
                "direction": spec.direction,
                "aggregation": spec.aggregation,
                "grain": spec.grain,
                "scope": spec.scope,
                "value_per_unit": spec.value_per_unit,
                "description": spec.description,
            },
        )
    teams = {team.slug: team for team in Team.objects.filter(organisation=organisation)}
    for slug, note in ADOPTIONS.items():
        Adoption.objects.update_or_create(
            team=teams[slug], defaults={"organisation": organisation, "adopted_on": adopted_on, "note": note}
        )
    people = dict(
        Person.objects.filter(organisation=organisation, is_active=True, team__isnull=False)
        .values_list("team__slug")
        .annotate(n=Count("id"))
        .order_by()
    )
    weeks = periods_within(today - dt.timedelta(weeks=WEEKS + 2), today, MetricGrain.WEEK)[-WEEKS:]
    months = periods_within(today - dt.timedelta(days=31 * (MONTHS + 2)), today, MetricGrain.MONTH)[-MONTHS:]
    rows = []
    for series in SERIES:
        metric = metrics[series.metric]
        periods = months if metric.grain == MetricGrain.MONTH else weeks
        if metric.scope == MetricScope.TASK:
            adopter, headcount, subject = TASK_ADOPTION.get(series.subject), 1, "task"
        else:
            adopter, headcount, subject = series.subject, people.get(series.subject, 0), "team"
            if metric.aggregation == Aggregation.MEAN:
                headcount = 1
        team_adopted = adopted_on if adopter in ADOPTIONS else None
        for period in periods:
            value = series_value(series, period, metric.grain, headcount, team_adopted)
            cells = {
                "metric": metric.key,
                subject: series.subject,
                "period": period_label(period, metric.grain),
                "value": str(value),
            }
            rows.append(RawRow("demo", len(rows) + 1, cells, ""))
    values = metric_values_import(viewer=organisation_viewer(organisation), rows=rows, source="demo")
    return DemoMetricsResult(len(metrics), len(ADOPTIONS), values, _fill_loaded_costs(organisation))
