"""Reads for ROI: outcomes beside AI spend, per team or task and period. Every selector takes the viewer.

Who sees what (fail closed; out of scope is a 404, never an empty page):
- CIO/FinOps: every metric and value of the organisation, and the payroll share;
- a manager: team metrics, with values and spend of the teams they manage and the teams below; task
  metrics are organisation-wide and not theirs; comparisons use only teams they can see;
- a member: nothing here (outcomes are counted per team, not per person).

Spend is read from the daily rollups through apps.accounts.scoping, like every spend figure. A team's
spend is its own and its sub-teams' (as on the team page). Money stays exact: nano-dollars from the
ledger, Decimal dollars for ratios; only templates round, to the cent.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404

from apps.accounts.models import Role
from apps.accounts.scoping import ScopeMissing, Viewer, scope_usage, subtree_team_ids
from apps.metrics import method
from apps.metrics.models import Adoption, Aggregation, Direction, Metric, MetricScope, MetricValue
from apps.metrics.periods import grain_noun, period_end, period_label, periods_within
from apps.org.models import Person, Task, Team
from apps.usage.models import DailyRollup

NANOS = Decimal(1_000_000_000)
DAYS_PER_YEAR = Decimal(365)


def method_settings() -> method.Settings:
    """The comparison's knobs; SPENDWATCH_METRICS_* settings override the defaults."""
    return method.Settings(
        min_people=getattr(settings, "SPENDWATCH_METRICS_MIN_PEOPLE", 5),
        min_periods=getattr(settings, "SPENDWATCH_METRICS_MIN_PERIODS", 4),
        window=getattr(settings, "SPENDWATCH_METRICS_WINDOW_PERIODS", 12),
    )


def heavy_spender_factor() -> Decimal:
    """A heavy spender spends at least this many times the median active person of their team."""
    return Decimal(str(getattr(settings, "SPENDWATCH_METRICS_HEAVY_FACTOR", 5)))


# --- scope ---------------------------------------------------------------------------------------------


def require_metrics_viewer(viewer: Viewer) -> None:
    """CIO/FinOps and managers of at least one team; anyone else gets 404."""
    if viewer.sees_organisation:
        return
    if viewer.role == Role.MANAGER and viewer.team_ids:
        return
    raise Http404("no such page")


def scope_metric_values(queryset: QuerySet[MetricValue], viewer: Viewer | None) -> QuerySet[MetricValue]:
    """Values the viewer may see. No viewer: raises (a forgotten scope must not return everything)."""
    if viewer is None:
        raise ScopeMissing("metric values queried without a viewer")
    queryset = queryset.filter(metric__organisation_id=viewer.organisation_id)
    if viewer.sees_organisation:
        return queryset
    if viewer.role != Role.MANAGER or not viewer.team_ids:
        return queryset.none()
    return queryset.filter(task__isnull=True, team_id__in=viewer.team_ids)


def metrics_for(viewer: Viewer) -> QuerySet[Metric]:
    require_metrics_viewer(viewer)
    metrics = Metric.objects.filter(organisation_id=viewer.organisation_id)
    if not viewer.sees_organisation:
        metrics = metrics.filter(scope=MetricScope.TEAM)
    return metrics.order_by("name")


def metric_get(viewer: Viewer, *, key: str) -> Metric:
    metric = metrics_for(viewer).filter(key=key).first()
    if metric is None:
        raise Http404("no such metric")
    return metric


def team_for_metrics(viewer: Viewer, *, slug: str) -> Team:
    require_metrics_viewer(viewer)
    team = Team.objects.filter(organisation_id=viewer.organisation_id, slug=slug).first()
    if team is None or not viewer.can_see_team(team.pk):
        raise Http404("no such team")
    return team


# --- the HR figure -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payroll:
    annual_usd: Decimal | None  # the sum of the known annual loaded costs; None when none is known
    people: int  # active people in the teams
    people_with_cost: int

    @property
    def complete(self) -> bool:
        return self.people > 0 and self.people == self.people_with_cost


def team_payroll(team_ids: frozenset[int]) -> Payroll:
    """Annual loaded payroll of the active people in these teams, from the HR import.

    The one place that reads the HR figure (Person.annual_loaded_cost, in USD like every amount here).
    """
    totals = Person.objects.filter(team_id__in=team_ids, is_active=True).aggregate(
        annual=Sum("annual_loaded_cost"),
        people=Count("id"),
        with_cost=Count("id", filter=Q(annual_loaded_cost__isnull=False)),
    )
    return Payroll(totals["annual"], totals["people"] or 0, totals["with_cost"] or 0)


def _headcounts(organisation_id: int) -> dict[int, int]:
    """Active people per team, each team counting the teams below it (two queries)."""
    own = dict(
        Person.objects.filter(organisation_id=organisation_id, is_active=True, team__isnull=False)
        .values_list("team_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    children: dict[int | None, list[int]] = defaultdict(list)
    team_ids = []
    for team_id, parent_id in Team.objects.filter(organisation_id=organisation_id).values_list(
        "id", "parent_id"
    ):
        children[parent_id].append(team_id)
        team_ids.append(team_id)

    def total(team_id: int) -> int:
        return own.get(team_id, 0) + sum(total(child) for child in children.get(team_id, ()))

    return {team_id: total(team_id) for team_id in team_ids}


# --- spend ---------------------------------------------------------------------------------------------


def spend_by_day(
    viewer: Viewer,
    *,
    start: dt.date,
    end: dt.date,
    team_ids: frozenset[int] | None = None,
    task_id: int | None = None,
) -> dict[dt.date, int]:
    """Nano-dollars per organisation-local day from the rollups, within the viewer's scope."""
    rows = scope_usage(DailyRollup.objects.all(), viewer).filter(day__gte=start, day__lte=end)
    if team_ids is not None:
        rows = rows.filter(team_id__in=team_ids)
    if task_id is not None:
        rows = rows.filter(task_id=task_id)
    return {
        row["day"]: row["cost"] or 0 for row in rows.values("day").annotate(cost=Sum("cost_nanos")).order_by()
    }


def _in_period(daily: dict[dt.date, int], start: dt.date, grain: str) -> int:
    last = period_end(start, grain)
    return sum(nanos for day, nanos in daily.items() if start <= day <= last)


# --- subjects and their points --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subject:
    """What a value is counted for: a team (with the teams below it, for spend) or a task."""

    kind: str  # "team" | "task"
    pk: int
    key: str  # team slug or task key
    name: str
    team_ids: frozenset[int] | None = None  # the team's subtree; None for a task

    def spend_filter(self) -> dict:
        return {"team_ids": self.team_ids} if self.kind == MetricScope.TEAM else {"task_id": self.pk}


def team_subject(team: Team) -> Subject:
    return Subject(
        MetricScope.TEAM, team.pk, team.slug, team.name, subtree_team_ids(team.organisation_id, {team.pk})
    )


def subjects_for(viewer: Viewer, metric: Metric) -> list[Subject]:
    """The teams (or tasks) the viewer may see that have values for this metric, by name."""
    values = scope_metric_values(MetricValue.objects.filter(metric=metric), viewer)
    if metric.scope == MetricScope.TEAM:
        teams = Team.objects.filter(pk__in=values.values("team_id")).order_by("name")
        roots = list(teams)
        return [team_subject(team) for team in roots]
    tasks = Task.objects.filter(pk__in=values.values("task_id")).order_by("name")
    return [Subject(MetricScope.TASK, task.pk, task.key, task.name) for task in tasks]


def subject_pick(subjects: list[Subject], key: str | None) -> Subject | None:
    """The subject named by `key` among those the viewer sees (404 otherwise), else the first one."""
    if key is None:
        return subjects[0] if subjects else None
    for subject in subjects:
        if subject.key == key:
            return subject
    raise Http404("no such team or task for this metric")


@dataclass(frozen=True, slots=True)
class PeriodPoint:
    period_start: dt.date
    label: str
    outcome: Decimal | None  # None: no value sent for this period
    spend_nanos: int
    value_per_unit: Decimal | None

    @property
    def spend_usd(self) -> Decimal:
        return Decimal(self.spend_nanos) / NANOS

    @property
    def cost_per_outcome(self) -> Decimal | None:
        """USD of AI spend per unit of outcome, exact (templates round to the cent)."""
        if not self.outcome:
            return None
        return self.spend_usd / self.outcome

    @property
    def value_usd(self) -> Decimal | None:
        if self.outcome is None or self.value_per_unit is None:
            return None
        return self.outcome * self.value_per_unit

    @property
    def roi(self) -> Decimal | None:
        value = self.value_usd
        if value is None or not self.spend_nanos:
            return None
        return value / self.spend_usd


def outcome_points(
    viewer: Viewer, metric: Metric, subject: Subject, *, start: dt.date, end: dt.date
) -> list[PeriodPoint]:
    """One point per whole period inside start..end: the outcome sent for it (if any) and the spend."""
    periods = periods_within(start, end, metric.grain)
    if not periods:
        return []
    values = scope_metric_values(MetricValue.objects.filter(metric=metric), viewer).filter(
        period_start__in=periods, **{f"{subject.kind}_id": subject.pk}
    )
    by_period = dict(values.values_list("period_start", "value"))
    daily = spend_by_day(
        viewer, start=periods[0], end=period_end(periods[-1], metric.grain), **subject.spend_filter()
    )
    per_unit = metric.value_per_unit if metric.has_cost_per_outcome else None
    return [
        PeriodPoint(
            period_start=period,
            label=period_label(period, metric.grain),
            outcome=by_period.get(period),
            spend_nanos=_in_period(daily, period, metric.grain),
            value_per_unit=per_unit,
        )
        for period in periods
    ]


@dataclass(frozen=True, slots=True)
class RoiSummary:
    """A subject's outcomes and spend over the periods that have a value (spend without an outcome
    figure is left out of both sides, so the ratio compares like with like)."""

    metric: Metric
    subject: Subject
    periods: int
    outcome: Decimal | None  # the sum (or mean, for averaged metrics) over those periods
    spend_nanos: int

    @property
    def spend_usd(self) -> Decimal:
        return Decimal(self.spend_nanos) / NANOS

    @property
    def cost_per_outcome(self) -> Decimal | None:
        if not self.metric.has_cost_per_outcome or not self.outcome:
            return None
        return self.spend_usd / self.outcome

    @property
    def value_usd(self) -> Decimal | None:
        if self.outcome is None or self.metric.value_per_unit is None or not self.metric.has_cost_per_outcome:
            return None
        return self.outcome * self.metric.value_per_unit

    @property
    def roi(self) -> Decimal | None:
        """Value of the outcomes / AI spend. All outcomes count, not only the ones AI touched."""
        value = self.value_usd
        if value is None or not self.spend_nanos:
            return None
        return value / self.spend_usd


def roi_summary(metric: Metric, subject: Subject, points: list[PeriodPoint]) -> RoiSummary:
    counted = [point for point in points if point.outcome is not None]
    outcome: Decimal | None = None
    if counted:
        total = sum((point.outcome for point in counted), Decimal(0))  # type: ignore[misc]
        outcome = total if metric.aggregation == Aggregation.SUM else total / len(counted)
    return RoiSummary(
        metric=metric,
        subject=subject,
        periods=len(counted),
        outcome=outcome,
        spend_nanos=sum(point.spend_nanos for point in counted),
    )


# --- payroll share (CIO/FinOps) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayrollShare:
    spend_nanos: int
    days: int
    payroll: Payroll

    @property
    def payroll_usd(self) -> Decimal | None:
        """The loaded payroll of the period: annual x days / 365."""
        if self.payroll.annual_usd is None:
            return None
        return self.payroll.annual_usd * self.days / DAYS_PER_YEAR

    @property
    def share(self) -> Decimal | None:
        """AI spend / loaded payroll, as a fraction (0.0125 = 1.25%)."""
        payroll = self.payroll_usd
        if not payroll:
            return None
        return (Decimal(self.spend_nanos) / NANOS) / payroll


def payroll_share(viewer: Viewer, team: Team, *, start: dt.date, end: dt.date) -> PayrollShare | None:
    """The team's (and sub-teams') AI spend as a share of its loaded payroll, start..end inclusive.

    CIO/FinOps only: for anyone else None (pay is not a manager's figure to read here).
    """
    if not viewer.sees_organisation or not viewer.can_see_team(team.pk):
        return None
    team_ids = subtree_team_ids(team.organisation_id, {team.pk})
    spend = sum(spend_by_day(viewer, start=start, end=end, team_ids=team_ids).values())
    return PayrollShare(spend_nanos=spend, days=(end - start).days + 1, payroll=team_payroll(team_ids))


# --- adoption: weekly active users, heavy spenders ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdoptionWeek:
    week_start: dt.date
    active_people: int  # people with at least one usage row that week
    spend_nanos: int  # the team's whole spend that week (shared keys included)
    suppressed: bool  # fewer active people than the minimum: no per-person figure

    @property
    def spend_per_active_nanos(self) -> int | None:
        if self.suppressed or not self.active_people:
            return None
        return self.spend_nanos // self.active_people


def adoption_weeks(viewer: Viewer, team: Team, *, start: dt.date, end: dt.date) -> list[AdoptionWeek]:
    """Weekly active people and spend per active person, for the whole ISO weeks in start..end."""
    weeks = periods_within(start, end, "week")
    if not weeks:
        return []
    team_ids = subtree_team_ids(team.organisation_id, {team.pk})
    last = weeks[-1] + dt.timedelta(days=6)
    rows = scope_usage(DailyRollup.objects.all(), viewer).filter(
        day__gte=weeks[0], day__lte=last, team_id__in=team_ids
    )
    active: dict[dt.date, set[int]] = defaultdict(set)
    spend: dict[dt.date, int] = defaultdict(int)
    for day, person_id, cost in (
        rows.values_list("day", "person_id").annotate(cost=Sum("cost_nanos")).order_by()
    ):
        week = day - dt.timedelta(days=day.weekday())
        spend[week] += cost or 0
        if person_id is not None:
            active[week].add(person_id)
    minimum = method_settings().min_people
    return [
        AdoptionWeek(week, len(active[week]), spend[week], suppressed=len(active[week]) < minimum)
        for week in weeks
    ]


@dataclass(frozen=True, slots=True)
class HeavySpender:
    person_id: int
    name: str
    spend_nanos: int
    times_median: Decimal


@dataclass(frozen=True, slots=True)
class HeavySpenders:
    people: list[HeavySpender]
    active_people: int
    median_nanos: int | None
    factor: Decimal
    suppressed: bool  # too few active people for a median to mean anything


def heavy_spenders(viewer: Viewer, team: Team, *, start: dt.date, end: dt.date) -> HeavySpenders:
    """People of the team (and below) spending at least `factor` x the median active person."""
    team_ids = subtree_team_ids(team.organisation_id, {team.pk})
    rows = (
        scope_usage(DailyRollup.objects.all(), viewer)
        .filter(day__gte=start, day__lte=end, team_id__in=team_ids, person_id__isnull=False)
        .values_list("person_id")
        .annotate(cost=Sum("cost_nanos"))
        .order_by()
    )
    per_person = {person_id: cost or 0 for person_id, cost in rows}
    factor = heavy_spender_factor()
    if len(per_person) < method_settings().min_people:
        return HeavySpenders([], len(per_person), None, factor, suppressed=True)
    median = int(statistics.median(per_person.values()))
    heavy = {pid: cost for pid, cost in per_person.items() if median > 0 and cost >= factor * median}
    names = dict(Person.objects.filter(pk__in=heavy).values_list("pk", "name"))
    people = sorted(
        (
            HeavySpender(pid, names.get(pid, "?"), cost, Decimal(cost) / Decimal(median))
            for pid, cost in heavy.items()
        ),
        key=lambda spender: -spender.spend_nanos,
    )
    return HeavySpenders(people, len(per_person), median, factor, suppressed=False)


# --- the comparison ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    metric: Metric
    team: Team
    adopted_on: dt.date | None
    result: method.Estimate | method.Suppressed
    per_person: bool  # the compared values are per person (summed metrics)
    label: str = method.LABEL

    @property
    def estimate(self) -> method.Estimate | None:
        return self.result if isinstance(self.result, method.Estimate) else None

    @property
    def unit_text(self) -> str:
        noun = grain_noun(self.metric.grain)
        return (
            f"{self.metric.unit} per person per {noun}"
            if self.per_person
            else f"{self.metric.unit} per {noun}"
        )

    @property
    def verdict(self) -> str:
        if self.estimate is None:
            return ""
        return method.verdict(self.estimate, higher_is_better=self.metric.direction == Direction.HIGHER)

    @property
    def did_not_improve(self) -> bool | None:
        return method.did_not_improve(self.result, higher_is_better=self.metric.direction == Direction.HIGHER)


def comparison(viewer: Viewer, metric: Metric, team: Team) -> Comparison:
    """Before/after the team's adoption date against matched teams the viewer can see.

    Comparison teams are limited to the viewer's scope (a manager's comparison never reads other
    teams' outcomes), so a manager of a single team sees no estimate.
    """
    require_metrics_viewer(viewer)
    if metric.scope != MetricScope.TEAM or not viewer.can_see_team(team.pk):
        raise Http404("no such comparison")
    per_person = metric.aggregation == Aggregation.SUM
    adoption = Adoption.objects.filter(team=team).values_list("adopted_on", flat=True).first()
    values = scope_metric_values(MetricValue.objects.filter(metric=metric), viewer).values_list(
        "team_id", "period_start", "value"
    )
    by_team: dict[int, dict[dt.date, Decimal]] = defaultdict(dict)
    for team_id, period, value in values:
        by_team[team_id][period] = value
    headcounts = _headcounts(viewer.organisation_id)
    adoptions = dict(
        Adoption.objects.filter(organisation_id=viewer.organisation_id).values_list("team_id", "adopted_on")
    )
    names = dict(Team.objects.filter(pk__in=by_team).values_list("pk", "name"))

    def series(team_id: int) -> method.Series:
        people = headcounts.get(team_id, 0)
        raw = by_team.get(team_id, {})
        scaled = {p: float(v) / people if per_person and people else float(v) for p, v in raw.items()}
        return method.Series(names.get(team_id, ""), scaled, people, adoptions.get(team_id))

    # A team above or below the treated one shares its people: never its comparison.
    related = _ancestors(team) | subtree_team_ids(team.organisation_id, {team.pk})
    every_period = {period for periods in by_team.values() for period in periods}
    result = method.compare(
        series(team.pk),
        [series(team_id) for team_id in by_team if team_id not in related],
        period_end={period: period_end(period, metric.grain) for period in every_period},
        settings=method_settings(),
        noun=grain_noun(metric.grain),
    )
    if (
        isinstance(result, method.Suppressed)
        and not viewer.sees_organisation
        and result.reason.startswith("no comparison")
    ):
        result = method.Suppressed(result.reason + "; only teams you can see are compared")
    return Comparison(metric, team, adoption, result, per_person)


def _ancestors(team: Team) -> set[int]:
    parents = dict(Team.objects.filter(organisation_id=team.organisation_id).values_list("id", "parent_id"))
    found, parent = set(), parents.get(team.pk)
    while parent is not None and parent not in found:
        found.add(parent)
        parent = parents.get(parent)
    return found


# --- the team panel -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TeamMetricRow:
    summary: RoiSummary
    comparison: Comparison


@dataclass(frozen=True, slots=True)
class TeamRoi:
    team: Team
    start: dt.date
    end: dt.date
    adopted_on: dt.date | None
    rows: list[TeamMetricRow]
    payroll: PayrollShare | None  # None for everyone but CIO/FinOps
    last_week: AdoptionWeek | None
    heavy: HeavySpenders
    token_maxing: list[str] = field(
        default_factory=list
    )  # metrics that did not improve while heavy spenders spent
    label: str = method.LABEL


def team_roi(viewer: Viewer, team: Team, start: dt.date, end: dt.date) -> TeamRoi:
    """Everything the ROI panel of a team page shows, for start..end (inclusive); 404 out of scope."""
    require_metrics_viewer(viewer)
    if team.organisation_id != viewer.organisation_id or not viewer.can_see_team(team.pk):
        raise Http404("no such team")
    subject = team_subject(team)
    metrics = metrics_for(viewer).filter(scope=MetricScope.TEAM, metric_values__team=team).distinct()
    rows = []
    for metric in metrics:
        points = outcome_points(viewer, metric, subject, start=start, end=end)
        rows.append(TeamMetricRow(roi_summary(metric, subject, points), comparison(viewer, metric, team)))
    weeks = adoption_weeks(viewer, team, start=start, end=end)
    heavy = heavy_spenders(viewer, team, start=start, end=end)
    flat = [row.summary.metric.name for row in rows if row.comparison.did_not_improve]
    return TeamRoi(
        team=team,
        start=start,
        end=end,
        adopted_on=Adoption.objects.filter(team=team).values_list("adopted_on", flat=True).first(),
        rows=rows,
        payroll=payroll_share(viewer, team, start=start, end=end),
        last_week=weeks[-1] if weeks else None,
        heavy=heavy,
        token_maxing=flat if heavy.people else [],
    )


# --- the task panel -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskMetricRow:
    summary: RoiSummary
    points: list[PeriodPoint]  # the periods with an outcome figure: cost per outcome over time


@dataclass(frozen=True, slots=True)
class TaskRoi:
    """A task's business outcomes against its AI spend. Tasks cut across teams and have no adoption date,
    so there is no before/after comparison: cost per outcome over time and value per AI dollar only."""

    task: Task
    start: dt.date
    end: dt.date
    rows: list[TaskMetricRow]
    label: str = method.LABEL


def task_roi(viewer: Viewer, task: Task, start: dt.date, end: dt.date) -> TaskRoi:
    """Everything the ROI panel of a task page shows, for start..end (inclusive).

    Task metrics count outcomes of the whole organisation, so only CIO/FinOps see them (404 otherwise,
    as on the Metrics page), and the spend they are set against is the task's spend in every team.
    """
    require_metrics_viewer(viewer)
    if task.organisation_id != viewer.organisation_id or not viewer.sees_organisation:
        raise Http404("no such task")
    subject = Subject(MetricScope.TASK, task.pk, task.key, task.name)
    metrics = metrics_for(viewer).filter(scope=MetricScope.TASK, metric_values__task=task).distinct()
    rows = []
    for metric in metrics:
        periods = outcome_points(viewer, metric, subject, start=start, end=end)
        counted = [point for point in periods if point.outcome is not None]
        rows.append(TaskMetricRow(roi_summary(metric, subject, periods), counted))
    return TaskRoi(task=task, start=start, end=end, rows=rows)


def adoptions_for(viewer: Viewer) -> list[tuple[Team, Adoption | None]]:
    """Every team of the organisation with its adoption date, if any (CIO/FinOps)."""
    if not viewer.sees_organisation:
        raise Http404("no such page")
    adoptions = {a.team_id: a for a in Adoption.objects.filter(organisation_id=viewer.organisation_id)}
    teams = Team.objects.filter(organisation_id=viewer.organisation_id).order_by("name")
    return [(team, adoptions.get(team.pk)) for team in teams]
