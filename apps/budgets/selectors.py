"""Reads for budgets. Pages go through the viewer (out of scope: 404); the refresh reads the rollups."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import F, Q, QuerySet, Sum
from django.http import Http404

from apps.accounts.models import Role
from apps.accounts.scoping import Viewer
from apps.budgets.forecast import BacktestResult, ForecastPoint, backtest, project
from apps.budgets.models import (
    Alert,
    BudgetAudit,
    BudgetSettings,
    CheckEntry,
    Limit,
    LimitState,
    ScopeKind,
    StateDay,
)
from apps.budgets.periods import local_day_fraction_left, local_today, period_bounds
from apps.budgets.text import amount_text, period_label, scope_label
from apps.org.models import Organisation, Person, Team
from apps.usage.models import NANOS_PER_USD, DailyRollup

# What a token limit counts: every token kind except reasoning, which is already part of output.
TOKEN_SUM = (
    F("input_uncached_tokens")
    + F("cache_read_tokens")
    + F("cache_write_5m_tokens")
    + F("cache_write_1h_tokens")
    + F("output_tokens")
)


def budget_settings_get(organisation: Organisation) -> BudgetSettings:
    found, _ = BudgetSettings.objects.get_or_create(organisation=organisation)
    return found


# --- the team tree ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TeamTree:
    parents: dict[int, int | None]
    slugs: dict[int, str]
    names: dict[int, str]

    def subtree(self, team_id: int) -> frozenset[int]:
        children: dict[int | None, list[int]] = defaultdict(list)
        for child, parent in self.parents.items():
            children[parent].append(child)
        found, stack = set(), [team_id]
        while stack:
            current = stack.pop()
            if current not in found:
                found.add(current)
                stack.extend(children.get(current, ()))
        return frozenset(found)

    def ancestors(self, team_id: int) -> list[int]:
        """Parent first, root last; the team itself is not included."""
        found: list[int] = []
        current = self.parents.get(team_id)
        while current is not None and current not in found:
            found.append(current)
            current = self.parents.get(current)
        return found


def team_tree(organisation_id: int) -> TeamTree:
    rows = list(
        Team.objects.filter(organisation_id=organisation_id).values_list("pk", "parent_id", "slug", "name")
    )
    return TeamTree(
        parents={pk: parent for pk, parent, _, _ in rows},
        slugs={pk: slug for pk, _, slug, _ in rows},
        names={pk: name for pk, _, _, name in rows},
    )


def limit_covered_teams(limit: Limit, tree: TeamTree) -> frozenset[int]:
    """The teams a team limit or per-person default covers."""
    if limit.team_id is None:
        return frozenset()
    return tree.subtree(limit.team_id) if limit.include_subteams else frozenset({limit.team_id})


# --- the ledger, as budgets read it ----------------------------------------------------------------------


def daily_amounts(
    organisation_id: int, dimension: str, *, days: Iterable[dt.date] | None, start: dt.date, end: dt.date
) -> dict[tuple[int, dt.date], tuple[int, int]]:
    """(dimension id, day) -> (cost nano-dollars, tokens) from the daily rollups; one grouped query.

    `dimension` is "team", "person" or "task". Days outside start..end are not read; with `days`, only those.
    """
    column = f"{dimension}_id"
    rows = DailyRollup.objects.filter(
        organisation_id=organisation_id, day__gte=start, day__lte=end, **{f"{column}__isnull": False}
    )
    if days is not None:
        wanted = sorted({day for day in days if start <= day <= end})
        if not wanted:
            return {}
        rows = rows.filter(day__in=wanted)
    grouped = rows.values(column, "day").annotate(cost=Sum("cost_nanos"), tokens=Sum(TOKEN_SUM)).order_by()
    return {(row[column], row["day"]): (row["cost"] or 0, row["tokens"] or 0) for row in grouped}


def ledger_first_day(organisation_id: int) -> dt.date | None:
    """The first organisation-local day the ledger has data for (days before it are unknown, not zero)."""
    return (
        DailyRollup.objects.filter(organisation_id=organisation_id)
        .order_by("day")
        .values_list("day", flat=True)
        .first()
    )


def state_daily(state_ids: Iterable[int]) -> dict[int, dict[dt.date, int]]:
    found: dict[int, dict[dt.date, int]] = defaultdict(dict)
    for state_id, day, amount in StateDay.objects.filter(state_id__in=list(state_ids)).values_list(
        "state_id", "day", "amount"
    ):
        found[state_id][day] = amount
    return found


# --- what a viewer may see and edit ----------------------------------------------------------------------


def _team_scope_q(team_ids: Iterable[int]) -> Q:
    team_ids = list(team_ids)
    return Q(scope_kind__in=(ScopeKind.TEAM, ScopeKind.PERSON_DEFAULT), team_id__in=team_ids) | Q(
        scope_kind=ScopeKind.PERSON, person__team_id__in=team_ids
    )


def _applies_to_q(person_id: int | None) -> Q:
    if person_id is None:
        return Q(pk__in=[])
    return Q(scope_kind=ScopeKind.PERSON, person_id=person_id) | Q(
        scope_kind=ScopeKind.PERSON_DEFAULT, states__person_id=person_id
    )


def limits_visible(viewer: Viewer) -> QuerySet[Limit]:
    """Limits the viewer may see: all (CIO, FinOps); the managed teams' and their own (manager); their own."""
    limits = Limit.objects.filter(organisation_id=viewer.organisation_id)
    if viewer.sees_organisation:
        return limits
    visible = _applies_to_q(viewer.person_id)
    if viewer.role == Role.MANAGER and viewer.team_ids:
        visible |= _team_scope_q(viewer.team_ids)
    return limits.filter(visible).distinct()


def limits_editable(viewer: Viewer) -> QuerySet[Limit]:
    """Limits the viewer may change (within the rules services enforce): scope only, not "applies to me"."""
    limits = Limit.objects.filter(organisation_id=viewer.organisation_id)
    if viewer.sees_organisation:
        return limits
    if viewer.role == Role.MANAGER and viewer.team_ids:
        return limits.filter(_team_scope_q(viewer.team_ids))
    return limits.none()


def limit_get(viewer: Viewer, *, limit_id: int) -> Limit:
    limit = (
        limits_visible(viewer)
        .filter(pk=limit_id)
        .select_related("team", "person__team", "task", "created_by")
        .first()
    )
    if limit is None:
        raise Http404("no such limit")
    return limit


def in_team_scope(limit: Limit, team_ids: Iterable[int] | None) -> bool:
    """Whether the limit's scope lies inside these teams (a task limit lies inside no team)."""
    if not team_ids:
        return False
    if limit.scope_kind == ScopeKind.PERSON:
        return limit.person.team_id in team_ids
    return limit.team_id is not None and limit.team_id in team_ids


def can_edit(viewer: Viewer, limit: Limit) -> bool:
    if viewer.sees_organisation:
        return True
    return viewer.role == Role.MANAGER and in_team_scope(limit, viewer.team_ids)


def editable_teams(viewer: Viewer) -> QuerySet[Team]:
    teams = Team.objects.filter(organisation_id=viewer.organisation_id)
    if viewer.sees_organisation:
        return teams
    if viewer.role == Role.MANAGER and viewer.team_ids:
        return teams.filter(pk__in=viewer.team_ids)
    return teams.none()


def editable_people(viewer: Viewer) -> QuerySet[Person]:
    people = Person.objects.filter(organisation_id=viewer.organisation_id, is_active=True).select_related(
        "team"
    )
    if viewer.sees_organisation:
        return people
    if viewer.role == Role.MANAGER and viewer.team_ids:
        return people.filter(team_id__in=viewer.team_ids)
    return people.none()


def _sees_whole_limit(viewer: Viewer, limit: Limit) -> bool:
    own_person_limit = limit.scope_kind == ScopeKind.PERSON and limit.person_id == viewer.person_id
    return can_edit(viewer, limit) or (own_person_limit and viewer.person_id is not None)


def states_visible(viewer: Viewer, limit: Limit) -> QuerySet[LimitState]:
    """The states of a visible limit the viewer may see: all of it, or only their own person's state."""
    states = LimitState.objects.filter(limit=limit).select_related("person")
    if viewer.sees_organisation or _sees_whole_limit(viewer, limit):
        return states
    return states.filter(person_id=viewer.person_id) if viewer.person_id else states.none()


def alerts_for(viewer: Viewer, limit: Limit) -> QuerySet[Alert]:
    alerts = Alert.objects.filter(limit=limit).select_related("person")
    if viewer.sees_organisation or _sees_whole_limit(viewer, limit):
        return alerts
    return alerts.filter(person_id=viewer.person_id) if viewer.person_id else alerts.none()


def audits_for(viewer: Viewer, limit: Limit) -> QuerySet[BudgetAudit]:
    """A limit's history: CIO and FinOps, and the managers of its team (TESTPLAN J3); nobody else."""
    if can_edit(viewer, limit):
        return BudgetAudit.objects.filter(limit=limit)
    return BudgetAudit.objects.none()


NEAR_PERCENT = 80


@dataclass(frozen=True, slots=True)
class LimitRow:
    limit: Limit
    state: LimitState | None
    people_states: int  # per-person defaults: how many people it applies to
    over: int  # per-person defaults: how many of them are over
    editable: bool

    @property
    def label(self) -> str:
        text = scope_label(self.limit)
        return text[0].upper() + text[1:]

    @property
    def period(self) -> str:
        text = period_label(self.limit)
        return text[0].upper() + text[1:]

    @property
    def limit_text(self) -> str:
        return amount_text(self.limit.amount, self.limit.unit)

    @property
    def spent_text(self) -> str:
        return amount_text(self.state.spent, self.state.unit) if self.state else "–"

    @property
    def percent(self) -> int:
        if self.state is None:
            return 0
        return int(self.state.spent * 100 // self.state.limit_amount)

    @property
    def bar_width(self) -> int:
        return min(100, self.percent)

    @property
    def status(self) -> str:
        """over: spent the limit; near: past 80 % or projected to exceed; under: neither."""
        if self.state is None:
            return "under"
        if self.state.spent >= self.state.limit_amount:
            return "over"
        projected = self.state.projected or 0
        return "near" if self.percent >= NEAR_PERCENT or projected > self.state.limit_amount else "under"

    @property
    def projected_text(self) -> str:
        return amount_text(self.state.projected, self.state.unit) if self.state else "–"

    @property
    def band_text(self) -> str:
        if self.state is None or self.state.projected_low is None:
            return ""
        unit = self.state.unit
        return (
            f"{amount_text(self.state.projected_low, unit)} – {amount_text(self.state.projected_high, unit)}"
        )


def limit_rows(viewer: Viewer) -> list[LimitRow]:
    """The budgets page: each visible active limit with its state (for a per-person default: the fullest one)."""
    limits = list(
        limits_visible(viewer).filter(is_active=True).select_related("team", "person", "task").order_by("pk")
    )
    states: dict[int, list[LimitState]] = defaultdict(list)
    for state in LimitState.objects.filter(limit__in=limits).select_related("person"):
        states[state.limit_id].append(state)
    rows = []
    for limit in limits:
        if viewer.sees_organisation or _sees_whole_limit(viewer, limit):
            mine = states[limit.pk]
        else:
            mine = [state for state in states[limit.pk] if state.person_id == viewer.person_id]
        fullest = max(mine, key=lambda s: s.spent / s.limit_amount, default=None)
        over = sum(1 for state in mine if state.spent >= state.limit_amount)
        rows.append(LimitRow(limit, fullest, len(mine), over, can_edit(viewer, limit)))
    return rows


# --- the check API ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Directory:
    """An organisation's raw identity values -> ids, as attribution resolves them, held in memory briefly."""

    time_zone: str
    users: dict[str, tuple[int | None, int | None, int | None]]  # value -> (person, team, task)
    person_teams: dict[int, int | None]
    teams: dict[str, int]
    tasks: dict[str, int]

    def resolve(
        self, person: str, team: str, task: str
    ) -> tuple[int | None, int | None, int | None, list[str]]:
        """(person id, team id, task id, names of the given parameters nobody here answers to).

        Same precedence as attribution: the user's identity first, then the gateway team, then the person's
        own team; the user's identity's task before the tag.
        """
        unknown = []
        person_id = user_team = user_task = None
        if person:
            found = self.users.get(person.lower())
            if found is None:
                unknown.append("person")
            else:
                person_id, user_team, user_task = found
        team_id = None
        if team:
            team_id = self.teams.get(team)
            if team_id is None:
                unknown.append("team")
        task_id = None
        if task:
            task_id = self.tasks.get(task)
            if task_id is None:
                unknown.append("task")
        team_id = user_team or team_id or (self.person_teams.get(person_id) if person_id else None)
        return person_id, team_id, user_task or task_id, unknown


_directories: dict[int, tuple[float, Directory]] = {}


def directory_build(organisation_id: int) -> Directory:
    from apps.org.models import Identity, IdentityKind, Task

    time_zone = Organisation.objects.filter(pk=organisation_id).values_list("time_zone", flat=True).first()
    people = list(
        Person.objects.filter(organisation_id=organisation_id).values_list("pk", "email", "team_id")
    )
    users: dict[str, tuple[int | None, int | None, int | None]] = {
        email.lower(): (pk, None, None) for pk, email, _ in people
    }
    teams = dict(Team.objects.filter(organisation_id=organisation_id).values_list("slug", "pk"))
    tasks = dict(Task.objects.filter(organisation_id=organisation_id).values_list("key", "pk"))
    identities = Identity.objects.filter(
        organisation_id=organisation_id,
        kind__in=(IdentityKind.USER, IdentityKind.GATEWAY_TEAM, IdentityKind.TAG),
    ).values_list("kind", "value", "person_id", "team_id", "task_id")
    for kind, value, person_id, team_id, task_id in identities:
        if kind == IdentityKind.USER:
            users[value.lower()] = (person_id, team_id, task_id)
        elif kind == IdentityKind.GATEWAY_TEAM and team_id is not None:
            teams[value] = team_id
        elif kind == IdentityKind.TAG and task_id is not None:
            tasks[value] = task_id
    return Directory(
        time_zone=time_zone or "UTC",
        users=users,
        person_teams={pk: team_id for pk, _, team_id in people},
        teams=teams,
        tasks=tasks,
    )


def directory_get(organisation_id: int, *, max_age: float) -> Directory:
    """The cached directory (rebuilt after `max_age` seconds): people and teams change rarely, checks often."""
    now = time.monotonic()
    cached = _directories.get(organisation_id)
    if cached is None or cached[0] < now:
        cached = (now + max_age, directory_build(organisation_id))
        _directories[organisation_id] = cached
    return cached[1]


def directory_forget() -> None:
    _directories.clear()


@dataclass(frozen=True, slots=True)
class CheckRow:
    limit_id: int
    scope: str
    unit: str
    limit_amount: int
    spent: int
    period_start: dt.date | None
    period_end: dt.date | None
    recurring: bool

    @property
    def room(self) -> float:
        """The share of the limit still available (negative when over)."""
        return (self.limit_amount - self.spent) / self.limit_amount


@dataclass(frozen=True, slots=True)
class CheckAnswer:
    allowed: bool
    binding: CheckRow | None  # the limit with the least room left, or None when none applies
    unknown: tuple[str, ...]


@dataclass(slots=True)
class _Snapshot:
    version: int
    rows: dict[str, list[CheckRow]]
    checked: float


_snapshots: dict[int, _Snapshot] = {}
_polling = threading.Lock()


def check_snapshot(organisation_id: int, *, poll_seconds: float) -> dict[str, list[CheckRow]]:
    """subject -> the states constraining it, as this process last loaded them.

    Every `poll_seconds` one indexed lookup reads the organisation's state version (bumped by each refresh
    in its own transaction); only when it moved are the entries reloaded (one query, joined to the states).
    A check in between touches no database at all: with SQLite's connection per request, opening the
    connection alone would cost more than the whole answer.
    """
    now = time.monotonic()
    snapshot = _snapshots.get(organisation_id)
    if snapshot is not None and now - snapshot.checked < poll_seconds:
        return snapshot.rows
    # One thread of the process polls; the others answer from the current snapshot meanwhile, unless
    # polls have been failing for a while (the database is down): then each request finds out itself.
    usable = snapshot is not None and now - snapshot.checked < max(2.0, 4 * poll_seconds)
    if usable and not _polling.acquire(blocking=False):
        return snapshot.rows
    try:
        return _poll(organisation_id, snapshot, now)
    finally:
        if usable:
            _polling.release()


def _poll(organisation_id: int, snapshot: _Snapshot | None, now: float) -> dict[str, list[CheckRow]]:
    version = (
        BudgetSettings.objects.filter(organisation_id=organisation_id)
        .values_list("state_version", flat=True)
        .first()
        or 0
    )
    if snapshot is None or snapshot.version != version:
        rows: dict[str, list[CheckRow]] = defaultdict(list)
        entries = CheckEntry.objects.filter(organisation_id=organisation_id).values_list(
            "subject",
            "state__limit_id",
            "state__scope",
            "state__unit",
            "state__limit_amount",
            "state__spent",
            "state__period_start",
            "state__period_end",
            "state__recurring",
        )
        for subject, *fields in entries:
            rows[subject].append(CheckRow(*fields))
        snapshot = _Snapshot(version, dict(rows), now)
        _snapshots[organisation_id] = snapshot
    else:
        snapshot.checked = now
    return snapshot.rows


def check_snapshots_forget() -> None:
    _snapshots.clear()


def budget_check(
    organisation_id: int,
    *,
    person: str,
    team: str,
    task: str,
    max_age: float,
    poll_seconds: float,
    today: dt.date | None = None,
) -> CheckAnswer:
    """Whether a request by this person / team / task may go ahead, from the precomputed states.

    Identifiers are resolved like attribution resolves a usage row (see Directory.resolve). A recurring
    limit whose stored period is over has spent nothing yet in the new one (the scheduled refresh rolls it
    over within minutes); a custom period not begun or already over does not constrain.
    """
    directory = directory_get(organisation_id, max_age=max_age)
    person_id, team_id, task_id, unknown = directory.resolve(person, team, task)
    subjects = [f"p:{person_id}"] if person_id else []
    subjects += [f"t:{team_id}"] if team_id else []
    subjects += [f"k:{task_id}"] if task_id else []
    today = today or local_today(directory.time_zone)
    binding: CheckRow | None = None
    allowed = True
    snapshot = check_snapshot(organisation_id, poll_seconds=poll_seconds)
    for row in (row for subject in subjects for row in snapshot.get(subject, ())):
        if row.period_start and today < row.period_start:
            continue
        if row.period_end and today > row.period_end:
            if not row.recurring:
                continue
            row = CheckRow(row.limit_id, row.scope, row.unit, row.limit_amount, 0, None, None, True)
        if row.spent >= row.limit_amount:
            allowed = False
        if binding is None or row.room < binding.room:
            binding = row
    return CheckAnswer(allowed, binding, tuple(unknown))


# --- burn charts ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Burn:
    unit: str
    period_start: dt.date
    period_end: dt.date
    actual: list[tuple[dt.date, float]]  # cumulative at the end of each day, period start .. today
    limit: float
    forecast: tuple[ForecastPoint, ...]  # cumulative, today .. period end
    exhaustion_date: dt.date | None


def burn(state: LimitState, *, now: dt.datetime | None = None) -> Burn:
    """A state's cumulative spend per day, its limit and its forecast path, in display units (USD or tokens)."""
    time_zone = (
        Organisation.objects.filter(pk=state.organisation_id).values_list("time_zone", flat=True).get()
    )
    today = local_today(time_zone, now)
    daily = state_daily([state.pk]).get(state.pk, {})
    scale = NANOS_PER_USD if state.unit == "usd" else 1
    actual, cumulative = [], 0
    last = min(today, state.period_end)
    day = state.period_start
    while day <= last:
        cumulative += daily.get(day, 0)
        actual.append((day, cumulative / scale))
        day += dt.timedelta(days=1)
    path: tuple[ForecastPoint, ...] = ()
    if state.period_start <= today <= state.period_end:
        projection = project(
            daily,
            period_start=state.period_start,
            period_end=state.period_end,
            today=today,
            limit=state.limit_amount,
            today_fraction_left=local_day_fraction_left(time_zone, now),
            data_start=ledger_first_day(state.organisation_id),
        )
        if projection is not None:
            path = tuple(
                ForecastPoint(p.day, p.mid / scale, p.low / scale, p.high / scale) for p in projection.path
            )
    return Burn(
        unit=state.unit,
        period_start=state.period_start,
        period_end=state.period_end,
        actual=actual,
        limit=state.limit_amount / scale,
        forecast=path,
        exhaustion_date=state.exhaustion_date,
    )


# --- forecast back-test on an organisation's ledger ------------------------------------------------------


def organisation_backtest(
    organisation_id: int, *, as_of_days: tuple[int, ...] = (7, 14, 21)
) -> BacktestResult:
    """Monthly projections replayed on the ledger: each team with its sub-teams, and the organisation."""
    first = ledger_first_day(organisation_id)
    if first is None:
        return BacktestResult(())
    last = (
        DailyRollup.objects.filter(organisation_id=organisation_id)
        .order_by("-day")
        .values_list("day", flat=True)[0]
    )
    tree = team_tree(organisation_id)
    per_team = daily_amounts(organisation_id, "team", days=None, start=first, end=last)
    series: dict[str, dict[dt.date, int]] = {}
    for team_id, slug in tree.slugs.items():
        covered = tree.subtree(team_id)
        daily: dict[dt.date, int] = defaultdict(int)
        for (object_id, day), (cost, _) in per_team.items():
            if object_id in covered:
                daily[day] += cost
        series[f"team:{slug}"] = dict(daily)
    whole = (
        DailyRollup.objects.filter(organisation_id=organisation_id)
        .values("day")
        .annotate(cost=Sum("cost_nanos"))
    )
    series["organisation"] = {row["day"]: row["cost"] or 0 for row in whole.order_by()}
    months = []
    start = first.replace(day=1)
    while start <= last:
        months.append(period_bounds("month", start))
        start = months[-1][1] + dt.timedelta(days=1)
    return backtest(series, months, data_start=first, data_end=last, as_of_days=as_of_days)
