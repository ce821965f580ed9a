"""Reads for the dashboards. Every selector takes the viewer first and goes through the one scoping helper.

Each query reads the narrowest rollup that can answer it (PERFORMANCE.md DASH-1/2): day x team x model,
day x team x task, day x person, month x person, day x person x model, day x person x task; only when a
question crosses those shapes (a model filter on the tasks page, a task filter on the models page) the
full daily rollup. The fact table is read
by the drill-down alone, one page at a time.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from django.db import connection
from django.db.models import BigIntegerField, Case, Count, F, Max, Model, Q, QuerySet, Sum, Value, When
from django.http import Http404

from apps.accounts.models import Role
from apps.accounts.scoping import Viewer, scope_usage
from apps.catalog.models import AIModel, Provider, Tier
from apps.catalog.pricing import Pricer, round_to_nanos
from apps.dashboards.filters import Filters
from apps.dashboards.models import (
    DayPerson,
    DayPersonModel,
    DayPersonTask,
    DayTeamModel,
    DayTeamTask,
    MonthPerson,
)
from apps.dashboards.services import month_end
from apps.ingestion.models import DataSource, IngestionRun, RejectedRow
from apps.org.models import Person, Task, Team
from apps.usage.models import DailyRollup, UsageFact
from apps.usage.partitions import ts_range_of_days
from apps.usage.selectors import MISSING_LABELS

DIMENSIONS = ("team", "person", "task", "provider", "model")

# (table, the dimensions it can group or filter by), narrowest first.
NARROW_ROLLUPS: tuple[tuple[type[Model], frozenset[str]], ...] = (
    (DayTeamModel, frozenset({"team", "provider", "model"})),
    (DayTeamTask, frozenset({"team", "task"})),
    (DayPerson, frozenset({"team", "person"})),
    (DayPersonModel, frozenset({"team", "person", "provider", "model"})),
    (DayPersonTask, frozenset({"team", "person", "task"})),
)


# --- measures ----------------------------------------------------------------------------------------


def _add(mine: int | None, theirs: int | None) -> int | None:
    return None if mine is None and theirs is None else (mine or 0) + (theirs or 0)


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums of a group of rollup rows. Money in nano-dollars; `requests` None when no source counted them;
    the token sums None unless the selector was asked for them (`tokens=True`): they cost a scan."""

    cost_nanos: int = 0
    counted_cost_nanos: int = 0  # of which rows with counted requests
    requests: int | None = None
    unpriced_rows: int = 0
    input_uncached_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None

    @classmethod
    def from_row(cls, row: dict) -> Totals:
        totals = cls(
            cost_nanos=row["s_cost_nanos"] or 0,
            counted_cost_nanos=row["s_counted_cost_nanos"] or 0,
            requests=row["s_requests"],
            unpriced_rows=row["s_unpriced_rows"] or 0,
        )
        if "s_cache_read_tokens" not in row:
            return totals
        return replace(
            totals,
            input_uncached_tokens=row["s_input_uncached_tokens"] or 0,
            cache_read_tokens=row["s_cache_read_tokens"] or 0,
            cache_write_tokens=(row["s_cache_write_5m_tokens"] or 0) + (row["s_cache_write_1h_tokens"] or 0),
        )

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            cost_nanos=self.cost_nanos + other.cost_nanos,
            counted_cost_nanos=self.counted_cost_nanos + other.counted_cost_nanos,
            requests=_add(self.requests, other.requests),
            unpriced_rows=self.unpriced_rows + other.unpriced_rows,
            input_uncached_tokens=_add(self.input_uncached_tokens, other.input_uncached_tokens),
            cache_read_tokens=_add(self.cache_read_tokens, other.cache_read_tokens),
            cache_write_tokens=_add(self.cache_write_tokens, other.cache_write_tokens),
        )

    @property
    def input_tokens(self) -> int | None:
        if self.cache_read_tokens is None:
            return None
        return (self.input_uncached_tokens or 0) + self.cache_read_tokens + (self.cache_write_tokens or 0)

    @property
    def cache_hit_rate(self) -> float | None:
        """The share of input tokens served from the provider's prompt cache (None: unknown or no input)."""
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else None

    @property
    def cost_per_request_nanos(self) -> int | None:
        """The cost of the rows that counted requests over those requests (half-even, to the nano-dollar)."""
        if not self.requests:
            return None
        quotient, remainder = divmod(self.counted_cost_nanos, self.requests)
        if 2 * remainder > self.requests or (2 * remainder == self.requests and quotient % 2):
            quotient += 1
        return quotient


BASIC = ("cost_nanos", "counted_cost_nanos", "requests", "unpriced_rows")
TOKENS = ("input_uncached_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens")


def _sums(table: type[Model], tokens: bool) -> dict:
    sums = {f"s_{measure}": Sum(measure) for measure in (*BASIC, *(TOKENS if tokens else ()))}
    if table is DailyRollup:  # the full daily rollup has no counted-cost column: the same sum, filtered
        sums["s_counted_cost_nanos"] = Sum("cost_nanos", filter=Q(requests__isnull=False))
    return sums


def _summed(rows: QuerySet, *group_by: str, tokens: bool = False) -> QuerySet:
    """The measures summed per group (no ORDER BY unless the caller adds one)."""
    return rows.values(*group_by).annotate(**_sums(rows.model, tokens)).order_by()


@dataclass(frozen=True, slots=True)
class Row:
    """One group: a dimension's member (or the rows without one), optionally one day of it."""

    object_id: int | None
    key: str | None  # slug / email / task key / "provider/model"; None: the rows without this dimension
    label: str
    totals: Totals
    day: dt.date | None = None
    extra: dict = field(default_factory=dict)  # e.g. a model's provider and tier

    @property
    def cost_nanos(self) -> int:
        return self.totals.cost_nanos


def total_of(rows: Iterable[Row]) -> Totals:
    total = Totals()
    for row in rows:
        total = total + row.totals
    return total


# --- which table, which rows ----------------------------------------------------------------------------


def rollup_for(viewer: Viewer, filters: Filters, dimensions: Iterable[str]) -> type[Model]:
    """The narrowest rollup that has every dimension the question groups or filters by (and the one
    scoping needs: a member's rows are found by person)."""
    needed = set(dimensions) | filters.dimensions
    if getattr(viewer, "role", None) == Role.MEMBER:  # no viewer: scope_usage refuses below
        needed.add("person")
    for table, has in NARROW_ROLLUPS:
        if needed <= has:
            return table
    return DailyRollup


def _filtered(queryset: QuerySet, filters: Filters) -> QuerySet:
    if filters.team_ids is not None:
        queryset = queryset.filter(team_id__in=filters.team_ids)
    if filters.no_team:
        queryset = queryset.filter(team_id__isnull=True)
    if filters.provider is not None:
        queryset = queryset.filter(provider_id=filters.provider.pk)
    if filters.model is not None:
        queryset = queryset.filter(model_id=filters.model.pk)
    if filters.task is not None:
        queryset = queryset.filter(task_id=filters.task.pk)
    if filters.no_task:
        queryset = queryset.filter(task_id__isnull=True)
    if filters.person is not None:
        queryset = queryset.filter(person_id=filters.person.pk)
    if filters.no_person:
        queryset = queryset.filter(person_id__isnull=True)
    return queryset


def _rollup_rows(viewer: Viewer, filters: Filters, dimensions: Iterable[str]) -> QuerySet:
    table = rollup_for(viewer, filters, dimensions)
    rows = scope_usage(table.objects.all(), viewer).filter(day__gte=filters.start, day__lte=filters.end)
    return _filtered(rows, filters)


def _labels(dimension: str, ids: set[int]) -> dict[int, tuple[str, str, dict]]:
    """id -> (key, label, extra) for the members present; one query (none when there are no ids)."""
    if not ids:
        return {}
    if dimension == "team":
        rows = Team.objects.filter(pk__in=ids).values_list("pk", "slug", "name", "parent_id")
        return {pk: (slug, name, {"parent_id": parent}) for pk, slug, name, parent in rows}
    if dimension == "person":
        rows = Person.objects.filter(pk__in=ids).values_list("pk", "email", "name", "team_id", "team__name")
        return {
            pk: (email, name, {"team_id": team_id, "team": team or ""})
            for pk, email, name, team_id, team in rows
        }
    if dimension == "task":
        return {
            pk: (key, name, {})
            for pk, key, name in Task.objects.filter(pk__in=ids).values_list("pk", "key", "name")
        }
    if dimension == "provider":
        rows = Provider.objects.filter(pk__in=ids).values_list("pk", "slug", "name")
        return {pk: (slug, name, {}) for pk, slug, name in rows}
    rows = AIModel.objects.filter(pk__in=ids).values_list(
        "pk", "provider__slug", "provider__name", "name", "tier"
    )
    return {
        pk: (f"{provider}/{name}", name, {"provider": provider, "provider_name": provider_name, "tier": tier})
        for pk, provider, provider_name, name, tier in rows
    }


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: (-row.totals.cost_nanos, row.key is None, row.label))


def grouped(viewer: Viewer, filters: Filters, *, by: str, tokens: bool = False) -> list[Row]:
    """Totals per member of one dimension, largest cost first (the rows without one included, labelled);
    with `tokens`, the input token sums too (cache hit rates)."""
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}")
    column = f"{by}_id"
    found = list(_summed(_rollup_rows(viewer, filters, {by}), column, tokens=tokens))
    labels = _labels(by, {row[column] for row in found if row[column] is not None})
    return _sorted([_row(by, row[column], labels, Totals.from_row(row)) for row in found])


def _row(
    dimension: str, object_id: int | None, labels: dict, totals: Totals, day: dt.date | None = None
) -> Row:
    key, label, extra = labels.get(object_id, (None, MISSING_LABELS[dimension], {}))
    return Row(object_id, key, label, totals, day, dict(extra))


def daily(viewer: Viewer, filters: Filters, *, by: str | None = None, tokens: bool = False) -> list[Row]:
    """Totals per day (and per member of `by`), in day order; days without usage are absent."""
    if by is None:
        found = _summed(_rollup_rows(viewer, filters, set()), "day", tokens=tokens).order_by("day")
        return [Row(None, None, "Total", Totals.from_row(row), row["day"]) for row in found]
    column = f"{by}_id"
    found = list(_summed(_rollup_rows(viewer, filters, {by}), "day", column).order_by("day"))
    labels = _labels(by, {row[column] for row in found if row[column] is not None})
    return [_row(by, row[column], labels, Totals.from_row(row), row["day"]) for row in found]


OTHER = "Other"
_OTHER_ID = 0  # no row has id 0: the series of the members not among the top


def daily_top(viewer: Viewer, filters: Filters, *, by: str, top: int = 8) -> list[Row]:
    """Daily totals of the `top` largest members of `by` over the period, and of all the others as one
    "Other" series: a stacked chart's data and the table behind it, summed by the database, so a figure
    gets days x (top + 1) rows whatever the number of teams (PERFORMANCE.md DASH-5)."""
    column = f"{by}_id"
    ranked = grouped(viewer, filters, by=by)
    keep = ranked[:top]
    kept_ids = [row.object_id for row in keep if row.object_id is not None]
    missing = Value(None) if any(row.object_id is None for row in keep) else Value(_OTHER_ID)
    whens = [When(**{f"{column}__in": kept_ids}, then=F(column))] if kept_ids else []
    series = Case(
        *whens,
        When(**{f"{column}__isnull": True}, then=missing),
        default=Value(_OTHER_ID),
        output_field=BigIntegerField(),
    )
    rows = _rollup_rows(viewer, filters, {by}).annotate(series=series)
    labels = {row.object_id: row for row in keep}
    others = f"{OTHER} ({len(ranked) - len(keep)} more)"
    result = []
    for found in _summed(rows, "day", "series").order_by("day"):
        totals = Totals.from_row(found)
        if found["series"] == _OTHER_ID:
            result.append(Row(None, None, others, totals, found["day"], {"other": True}))
        else:
            member = labels[found["series"]]
            result.append(
                Row(member.object_id, member.key, member.label, totals, found["day"], dict(member.extra))
            )
    return sorted(result, key=lambda row: (row.day, row.extra.get("other", False), -row.cost_nanos))


def top_people(viewer: Viewer, filters: Filters, *, limit: int | None = 20) -> list[Row]:
    """The people who spend most, largest first, then one row for the usage without a person (shared keys
    and projects: no one's spend, so it is never ranked, but it is shown so that the rows add up).

    Whole months inside the range come from month x person and the remaining days from day x person, so
    a quarter reads about three rows per person, not ninety; the database sums both and ranks, so only
    the top rows travel. A filter on a model or task crosses those shapes: the full daily rollup answers.
    """
    if filters.dimensions <= {"team", "person"}:
        sources = _people_sources(viewer, filters)
    else:
        sources = [(_rollup_rows(viewer, filters, {"person"}), 1)]
    ranked = [Row(row["person_id"], None, "", Totals.from_row(row)) for row in _ranked_people(sources, limit)]
    # The database puts the rows without a person first (to fetch them whatever the limit); pages list them last.
    ranked.sort(key=lambda row: row.object_id is None)
    labels = _labels("person", {row.object_id for row in ranked if row.object_id is not None})
    return [_row("person", row.object_id, labels, row.totals) for row in ranked]


def _measure_values(table: type[Model]) -> dict:
    """The BASIC measures of each row as v_<measure> (the full daily rollup computes its counted cost)."""
    values = {f"v_{measure}": F(measure) for measure in BASIC}
    if table is DailyRollup:
        values["v_counted_cost_nanos"] = Case(
            When(requests__isnull=False, then=F("cost_nanos")),
            default=Value(0),
            output_field=BigIntegerField(),
        )
    return values


def _ranked_people(sources: list[tuple[QuerySet, int]], limit: int | None) -> list[dict]:
    """Per-person sums of one or more querysets (each added, or subtracted with sign -1), ranked by the
    database: the rows without a person, then the `limit` largest (all when None). The SQL is the ORM's
    own for each source (scope and filters included), wrapped in a UNION ALL; only the ranking around it
    is written here. People whose rows cancel out (all of their month lay outside the range) are left out.
    """
    parts, params = [], []
    for index, (rows, sign) in enumerate(sources):
        # The rows themselves, not per-part sums: one aggregation over all of them, sized for the people.
        sql, part_params = rows.values("person_id", **_measure_values(rows.model)).query.sql_with_params()
        signed = ", ".join(f"{'-' if sign < 0 else ''}v_{measure} AS v_{measure}" for measure in BASIC)
        parts.append(f"SELECT person_id, {signed} FROM ({sql}) part{index}")  # noqa: S608 - the ORM's own SQL
        params.extend(part_params)
    sums = ", ".join(f"SUM(v_{measure}) AS s_{measure}" for measure in BASIC)
    statement = (
        f"SELECT person_id, {sums} FROM ({' UNION ALL '.join(parts)}) people "  # noqa: S608 - ORM SQL + constants
        "GROUP BY person_id "
        "HAVING SUM(v_cost_nanos) <> 0 OR SUM(v_unpriced_rows) <> 0 OR SUM(v_requests) <> 0 "
        "ORDER BY CASE WHEN person_id IS NULL THEN 0 ELSE 1 END, SUM(v_cost_nanos) DESC, person_id"
    )
    if limit:
        statement += " LIMIT %s"
        params.append(limit + 1)  # the row without a person comes first when it exists
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        names = [column[0] for column in cursor.description]
        # PostgreSQL sums bigints as numeric: back to exact Python ints, as the ORM's Sum would give.
        found = [
            {name: value if value is None else int(value) for name, value in zip(names, values, strict=True)}
            for values in cursor.fetchall()
        ]
    if limit and found and found[0]["person_id"] is not None:
        found = found[:limit]
    return found


def _people_sources(viewer: Viewer, filters: Filters) -> list[tuple[QuerySet, int]]:
    """Where a period's per-person sums come from, fewest rows first: a month wholly inside the period is
    one month x person row per person; a month partly inside is its days inside from day x person, or,
    when fewer days of it lie outside, its month row minus those days (the current month, whose remaining
    days have no usage yet, costs nothing that way)."""
    whole_months, plus_days, minus_days = [], [], []
    month = filters.start.replace(day=1)
    while month <= filters.end:
        last = month_end(month)
        inside = (max(month, filters.start), min(last, filters.end))
        outside = [
            (start, stop)
            for start, stop in (
                (month, inside[0] - dt.timedelta(days=1)),
                (inside[1] + dt.timedelta(days=1), last),
            )
            if start <= stop
        ]
        outside_days = sum((stop - start).days + 1 for start, stop in outside)
        if outside_days < (inside[1] - inside[0]).days + 1:
            whole_months.append(month)
            minus_days += outside
        else:
            plus_days.append(inside)
        month = last + dt.timedelta(days=1)

    def day_rows(ranges: list[tuple[dt.date, dt.date]]) -> QuerySet:
        span = Q()
        for start, stop in ranges:
            span |= Q(day__gte=start, day__lte=stop)
        return _filtered(scope_usage(DayPerson.objects.all(), viewer).filter(span), filters)

    sources = []
    if whole_months:
        months = scope_usage(MonthPerson.objects.all(), viewer).filter(month__in=whole_months)
        sources.append((_filtered(months, filters), 1))
    if plus_days:
        sources.append((day_rows(plus_days), 1))
    if minus_days:
        sources.append((day_rows(minus_days), -1))
    return sources


# --- teams ------------------------------------------------------------------------------------------------

TeamInfo = tuple[str, str, int | None]  # slug, name, parent id


def _visible_teams(
    viewer: Viewer, only: frozenset[int] | None
) -> tuple[dict[int, TeamInfo], dict[int | None, list[int]]]:
    """The teams the viewer sees (optionally only some) and their children by name; a team whose parent
    is out of sight is a root (under None). One query."""
    rows = Team.objects.filter(organisation_id=viewer.organisation_id).values_list(
        "pk", "slug", "name", "parent_id"
    )
    visible = {
        pk: (slug, name, parent)
        for pk, slug, name, parent in rows
        if viewer.can_see_team(pk) and (only is None or pk in only)
    }
    children: dict[int | None, list[int]] = defaultdict(list)
    for pk, (_, _name, parent) in sorted(visible.items(), key=lambda item: item[1][1]):
        children[parent if parent in visible else None].append(pk)
    return visible, children


@dataclass(frozen=True, slots=True)
class TeamNode:
    team_id: int | None  # None: the unattributed spend
    slug: str | None
    name: str
    parent_id: int | None  # None: a root of what the viewer sees
    own: Totals  # usage counted on this team itself
    subtree_cost_nanos: int  # this team and every visible team below it
    depth: int


def team_tree(viewer: Viewer, filters: Filters) -> list[TeamNode]:
    """Every team the viewer sees with its own spend and its subtree's, in tree order (parents first).

    A manager's tree starts at the teams they manage. Teams without usage are kept: a tree with holes
    hides who does not spend yet. The unattributed spend is a root of its own for those who see it.
    """
    own = {row.object_id: row.totals for row in grouped(viewer, filters, by="team", tokens=True)}
    visible, children = _visible_teams(viewer, filters.team_ids)

    subtree: dict[int, int] = {}

    def subtree_cost(pk: int) -> int:
        if pk not in subtree:
            subtree[pk] = own.get(pk, Totals()).cost_nanos + sum(subtree_cost(c) for c in children[pk])
        return subtree[pk]

    nodes: list[TeamNode] = []

    def walk(pk: int, depth: int) -> None:
        slug, name, parent = visible[pk]
        parent_id = parent if parent in visible else None
        nodes.append(TeamNode(pk, slug, name, parent_id, own.get(pk, Totals()), subtree_cost(pk), depth))
        for child in children[pk]:
            walk(child, depth + 1)

    for root in sorted(children[None], key=lambda pk: -subtree_cost(pk)):
        walk(root, 0)
    if None in own and filters.team_ids is None and own[None].cost_nanos:
        unattributed = own[None]
        nodes.append(
            TeamNode(None, None, MISSING_LABELS["team"], None, unattributed, unattributed.cost_nanos, 0)
        )
    return nodes


# --- models -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelRow:
    row: Row
    provider: str
    provider_name: str
    tier: str  # frontier | standard | small | unknown
    tier_basis: str  # override | rule | price_band | unknown | catalogue
    cache_saved_nanos: int | None  # None: no price for the model, so what caching saved is unknown


def models_breakdown(viewer: Viewer, filters: Filters) -> list[ModelRow]:
    """Spend, requests, tier and cache savings per model.

    Tiers as of the range's last day (apps.overuse.tiers: the organisation's overrides, the dated rules,
    else a price band). What caching saved is the cache reads priced at the model's uncached input rate
    minus their cache-read rate, at list prices on that day: an estimate of what the same prompts would
    have cost without the cache, not a ledger figure.
    """
    rows = grouped(viewer, filters, by="model", tokens=True)
    resolver = _tier_resolver(viewer.organisation_id)
    pricer = Pricer()
    at = dt.datetime.combine(filters.end, dt.time(12), tzinfo=dt.UTC)
    result = []
    for row in rows:
        provider = row.extra.get("provider", "")
        name = row.label if row.key else ""
        if resolver is not None and row.key:
            tier = resolver.tier(provider, name, filters.end)
            tier_name, basis = tier.tier, tier.basis
        else:
            tier_name, basis = row.extra.get("tier", Tier.UNKNOWN), "catalogue"
        result.append(
            ModelRow(
                row=row,
                provider=provider,
                provider_name=row.extra.get("provider_name", ""),
                tier=tier_name,
                tier_basis=basis,
                cache_saved_nanos=_cache_saved(pricer, provider, name, at, row.totals.cache_read_tokens),
            )
        )
    return result


def _tier_resolver(organisation_id: int):
    try:
        from apps.overuse.tiers import TierResolver
    except ImportError:  # the overuse app is optional: fall back to the catalogue's tier column
        return None
    return TierResolver(organisation_id)


def _cache_saved(
    pricer: Pricer, provider: str, model: str, at: dt.datetime, cache_read_tokens: int
) -> int | None:
    if not cache_read_tokens:
        return 0
    if not model:
        return None
    lookup = pricer.lookup(provider=provider, model=model, at=at)
    if lookup is None or lookup.rates is None:
        return None
    return round_to_nanos(cache_read_tokens * (lookup.rates.input_uncached - lookup.rates.cache_read))


@dataclass(frozen=True, slots=True)
class TierRow:
    tier: str
    totals: Totals
    models: int


TIER_ORDER = (Tier.FRONTIER, Tier.STANDARD, Tier.SMALL, Tier.UNKNOWN)


def tiers_breakdown(models: list[ModelRow]) -> list[TierRow]:
    """The models' rows summed per tier (no query), frontier first."""
    per_tier: dict[str, list[ModelRow]] = defaultdict(list)
    for model in models:
        per_tier[model.tier].append(model)
    return [
        TierRow(str(tier), total_of(model.row for model in per_tier[tier]), len(per_tier[tier]))
        for tier in TIER_ORDER
        if per_tier.get(tier)
    ]


def daily_by_tier(daily_models: list[Row], models: list[ModelRow]) -> list[Row]:
    """Daily spend per tier from daily-per-model rows (no query)."""
    tier_of = {model.row.object_id: model.tier for model in models}
    per_day: dict[tuple[dt.date, str], Totals] = defaultdict(Totals)
    for row in daily_models:
        per_day[(row.day, tier_of.get(row.object_id, Tier.UNKNOWN))] += row.totals
    return [
        Row(None, tier, Tier(tier).label, total, day)
        for (day, tier), total in sorted(
            per_day.items(), key=lambda item: (item[0][0], TIER_ORDER.index(item[0][1]))
        )
    ]


# --- tasks --------------------------------------------------------------------------------------------------


def tasks_with_owners(viewer: Viewer, filters: Filters) -> tuple[list[Row], dict[int | None, Row]]:
    """Spend per task, and each task's largest team, from one day x team x task query (task x team sums)."""
    found = list(_summed(_rollup_rows(viewer, filters, {"task", "team"}), "task_id", "team_id"))
    per_task: dict[int | None, Totals] = defaultdict(Totals)
    best: dict[int | None, dict] = {}
    for row in found:
        per_task[row["task_id"]] += Totals.from_row(row)
        current = best.get(row["task_id"])
        if current is None or (row["s_cost_nanos"] or 0) > (current["s_cost_nanos"] or 0):
            best[row["task_id"]] = row
    tasks = _labels("task", {task_id for task_id in per_task if task_id is not None})
    teams = _labels("team", {row["team_id"] for row in best.values() if row["team_id"] is not None})
    rows = _sorted([_row("task", task_id, tasks, totals) for task_id, totals in per_task.items()])
    owners = {
        task_id: _row("team", row["team_id"], teams, Totals.from_row(row)) for task_id, row in best.items()
    }
    return rows, owners


# --- sources ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceSummary:
    source: DataSource
    runs: int
    rows: int
    accepted: int
    rejected: int
    last_run: IngestionRun | None


def sources_overview(
    viewer: Viewer, *, recent: int = 20
) -> tuple[list[SourceSummary], list[IngestionRun], int]:
    """The organisation's data sources with their run totals, the recent runs, and all rejected rows.

    CIO and FinOps only (404 for everyone else), like the upload and run pages.
    """
    if not viewer.sees_organisation:
        raise Http404("no such page")
    sources = list(DataSource.objects.filter(organisation_id=viewer.organisation_id).order_by("name"))
    runs = IngestionRun.objects.filter(source__organisation_id=viewer.organisation_id)
    per_source = {
        row["source_id"]: row
        for row in runs.values("source_id")
        .annotate(
            n=Count("id"),
            rows_sum=Sum("rows"),
            accepted_sum=Sum("accepted"),
            rejected_sum=Sum("rejected"),
            last=Max("id"),
        )
        .order_by()
    }
    recent_runs = list(runs.select_related("source").order_by("-created_at", "-pk")[:recent])
    latest = {
        run.pk: run
        for run in IngestionRun.objects.filter(pk__in=[row["last"] for row in per_source.values()])
    }
    summaries = []
    for source in sources:
        row = per_source.get(source.pk, {})
        summaries.append(
            SourceSummary(
                source=source,
                runs=row.get("n") or 0,
                rows=row.get("rows_sum") or 0,
                accepted=row.get("accepted_sum") or 0,
                rejected=row.get("rejected_sum") or 0,
                last_run=latest.get(row.get("last")),
            )
        )
    rejected = RejectedRow.objects.filter(run__source__organisation_id=viewer.organisation_id).count()
    return summaries, recent_runs, rejected


# --- drill-down ---------------------------------------------------------------------------------------------

PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class FactPage:
    facts: list[UsageFact]
    page: int
    has_next: bool

    @property
    def first_number(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1


def fact_page(viewer: Viewer, filters: Filters, *, page: int = 1) -> FactPage:
    """One page of the fact rows behind a chart or a table row, newest first.

    Reads the organisation/day index for the range (BRIN on ts on PostgreSQL keeps a day's rows together);
    no COUNT over the window: the page asks for one row more than it shows to know whether a next exists.
    """
    page = max(1, page)
    # The ts bounds add nothing to the day filter but let PostgreSQL skip the other months' partitions.
    low, high = ts_range_of_days(filters.start, filters.end)
    facts = _filtered(scope_usage(UsageFact.objects.all(), viewer), filters).filter(
        day__gte=filters.start, day__lte=filters.end, ts__gte=low, ts__lt=high
    )
    offset = (page - 1) * PAGE_SIZE
    # The page's ids first, from the narrow sort key alone; then those rows with their labels. Joining
    # six dimension tables before sorting a day's rows would join all of them.
    ids = list(
        facts.order_by("-day", "-ts", "-id").values_list("id", flat=True)[offset : offset + PAGE_SIZE + 1]
    )
    rows = UsageFact.objects.filter(id__in=ids, ts__gte=low, ts__lt=high).select_related(
        "source", "team", "person", "task", "provider", "model"
    )
    by_id = {fact.pk: fact for fact in rows} if ids else {}
    found = [by_id[fact_id] for fact_id in ids]
    return FactPage(found[:PAGE_SIZE], page, len(found) > PAGE_SIZE)


# --- filter choices -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choices:
    teams: list[tuple[str, str]]  # (slug, name indented by depth), in tree order
    providers: list[tuple[str, str]]
    models: list[tuple[str, str]]  # ("provider/name", "name (provider)")
    tasks: list[tuple[str, str]]


def filter_choices(viewer: Viewer, filters: Filters) -> Choices:
    """The values the filter bar offers: the teams the viewer sees, and the providers, models and tasks
    that have usage in the viewer's scope in the chosen period."""
    teams = []
    if viewer.role != Role.MEMBER:
        visible, children = _visible_teams(viewer, None)

        def walk(pk: int, depth: int) -> None:
            teams.append((visible[pk][0], "· " * depth + visible[pk][1]))
            for child in children[pk]:
                walk(child, depth + 1)

        for root in children[None]:
            walk(root, 0)
    period = Filters(start=filters.start, end=filters.end, today=filters.today)
    model_ids = set(
        _rollup_rows(viewer, period, {"model"}).values_list("model_id", flat=True).distinct().order_by()
    )
    task_ids = set(
        _rollup_rows(viewer, period, {"task"}).values_list("task_id", flat=True).distinct().order_by()
    )
    model_rows = list(
        AIModel.objects.filter(pk__in=model_ids).values_list("provider__slug", "provider__name", "name")
    )
    providers = sorted({(slug, name) for slug, name, _ in model_rows}, key=lambda item: item[1].lower())
    models = sorted(
        ((f"{slug}/{name}", f"{name} ({provider})") for slug, provider, name in model_rows),
        key=lambda item: item[1].lower(),
    )
    tasks = sorted(
        Task.objects.filter(pk__in=task_ids - {None}).values_list("key", "name"),
        key=lambda item: item[1].lower(),
    )
    return Choices(teams, providers, models, list(tasks))
