"""Writes for budgets: limits (with their rules and audit trail), the state refresh, and alert delivery.

Rules for changing a limit, enforced here and nowhere else:
- the scope must be one the viewer may edit (CIO/FinOps: anything; a manager: the teams they manage, their
  sub-teams and their people); anything else does not exist for them (404), and the attempt is audited;
- a manager's limit may not exceed a limit of the same unit and period on an enclosing team;
- nobody raises (or removes) a limit whose scope contains themself;
- every change writes exactly one audit row, in the same transaction as the change.

The refresh (`state_refresh`) runs after each ingestion's rollups commit, and on a schedule for what time
alone changes (a new period, a forecast as days pass). It recomputes only the days it was told about,
writes the check API's lookup table and raises each alert at most once (a unique constraint), then queues
delivery: sending email and webhooks never happens inside the refresh.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.db.models import F, Q
from django.http import Http404
from django.template.loader import render_to_string
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.scoping import Viewer
from apps.budgets import forecast as forecasting
from apps.budgets.models import (
    Alert,
    AlertKind,
    AlertStatus,
    AuditAction,
    BudgetAudit,
    BudgetSettings,
    CheckEntry,
    Limit,
    LimitState,
    Period,
    ScopeKind,
    StateDay,
    Unit,
)
from apps.budgets.periods import local_day_fraction_left, local_today, period_bounds
from apps.budgets.selectors import (
    TeamTree,
    budget_settings_get,
    can_edit,
    daily_amounts,
    ledger_first_day,
    limit_covered_teams,
    state_daily,
    team_tree,
)
from apps.budgets.text import amount_text, period_label, scope_label
from apps.org.models import Organisation, Person, Task, Team

logger = logging.getLogger(__name__)
security_log = logging.getLogger("spendwatch.security")

MAX_THRESHOLDS = 10


class LimitRefused(Exception):
    """The change is not allowed for this viewer (raising their own limit, above the parent's limit)."""


class LimitInvalid(Exception):
    """The change is malformed (bad thresholds, dates, a duplicate limit)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: their rights (viewer), their account (None for system callers) and a request id."""

    viewer: Viewer
    user: object | None = None
    label: str = "system"
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


# --- audit -----------------------------------------------------------------------------------------------


def limit_snapshot(limit: Limit) -> dict:
    return {
        "scope_kind": limit.scope_kind,
        "team": limit.team_id,
        "person": limit.person_id,
        "task": limit.task_id,
        "include_subteams": limit.include_subteams,
        "unit": limit.unit,
        "amount": limit.amount,
        "period": limit.period,
        "custom_start": limit.custom_start.isoformat() if limit.custom_start else None,
        "custom_end": limit.custom_end.isoformat() if limit.custom_end else None,
        "thresholds": list(limit.thresholds),
        "notify_emails": limit.notify_emails,
        "is_active": limit.is_active,
    }


def _audit(
    actor: Actor,
    action: str,
    *,
    limit: Limit | None = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> BudgetAudit:
    return BudgetAudit.objects.create(
        organisation_id=actor.viewer.organisation_id,
        actor=actor.user if getattr(actor.user, "pk", None) else None,
        actor_label=actor.label,
        limit=limit,
        action=action,
        before=before,
        after=after,
        reason=reason,
        request_id=actor.request_id[:64],
    )


def attempt_refused(actor: Actor, reason: str) -> None:
    """For callers that refuse before reaching a service (a page that answers 404): logged all the same."""
    _refuse(actor, reason)


def _refuse(actor: Actor, reason: str, *, limit: Limit | None = None, attempted: dict | None = None) -> None:
    """Record a refused attempt (outside any transaction that will roll back) and log it."""
    _audit(actor, AuditAction.REFUSED, limit=limit, before=limit_snapshot(limit) if limit else None,
           after=attempted, reason=reason)  # fmt: skip
    security_log.warning(
        "budget change refused: actor=%s organisation=%s limit=%s reason=%s request=%s",
        actor.label,
        actor.viewer.organisation_id,
        limit.pk if limit else None,
        reason,
        actor.request_id,
    )


# --- limit rules -----------------------------------------------------------------------------------------


def _contains_person(limit: Limit, person_id: int | None, tree: TeamTree) -> bool:
    """Whether the person's own spend is limited by this limit."""
    if person_id is None:
        return False
    if limit.scope_kind == ScopeKind.PERSON:
        return limit.person_id == person_id
    if limit.scope_kind == ScopeKind.TASK:
        return False  # a use case's budget, not anyone's personal allowance
    person_team = Person.objects.filter(pk=person_id).values_list("team_id", flat=True).first()
    return person_team is not None and person_team in limit_covered_teams(limit, tree)


def _enclosing_limits(limit: Limit, tree: TeamTree) -> list[Limit]:
    """Active team limits of the same unit and period that contain this limit's scope (its "parents")."""
    if limit.scope_kind == ScopeKind.TASK:
        return []
    if limit.scope_kind == ScopeKind.PERSON:
        team_id = limit.person.team_id
        if team_id is None:
            return []
        same_team, ancestors = [team_id], tree.ancestors(team_id)
    elif limit.scope_kind == ScopeKind.PERSON_DEFAULT:
        same_team, ancestors = [limit.team_id], tree.ancestors(limit.team_id)
    else:
        same_team, ancestors = [], tree.ancestors(limit.team_id)
    candidates = Limit.objects.filter(
        Q(team_id__in=same_team) | Q(team_id__in=ancestors, include_subteams=True),
        organisation_id=limit.organisation_id,
        scope_kind=ScopeKind.TEAM,
        is_active=True,
        unit=limit.unit,
        period=limit.period,
    ).exclude(pk=limit.pk)
    if limit.period == Period.CUSTOM:
        candidates = candidates.filter(custom_start=limit.custom_start, custom_end=limit.custom_end)
    return list(candidates.select_related("team"))


def _check_ceiling(actor: Actor, limit: Limit, tree: TeamTree) -> None:
    """A manager's limits stay within what the enclosing team's limit allows (CIO and FinOps set those)."""
    if actor.viewer.role != Role.MANAGER:
        return
    for parent in _enclosing_limits(limit, tree):
        if limit.amount > parent.amount:
            raise LimitRefused(
                f"{amount_text(limit.amount, limit.unit)} is above the {period_label(parent)} limit of "
                f"{amount_text(parent.amount, parent.unit)} that {scope_label(parent)} allows"
            )


def _clean_thresholds(thresholds: Iterable[int]) -> list[int]:
    try:
        values = sorted({int(value) for value in thresholds})
    except (TypeError, ValueError):
        raise LimitInvalid("thresholds must be whole percentages, e.g. 50, 80, 100") from None
    if not values or len(values) > MAX_THRESHOLDS or values[0] < 1 or values[-1] > 1000:
        raise LimitInvalid(f"give 1 to {MAX_THRESHOLDS} thresholds between 1 and 1000 %")
    return values


def clean_emails(text: str) -> str:
    emails = [part.strip() for part in text.replace(";", ",").replace("\n", ",").split(",") if part.strip()]
    for email in emails:
        try:
            validate_email(email)
        except ValidationError:
            raise LimitInvalid(f"{email!r} is not an email address") from None
    return ", ".join(emails)


def _in_organisation(organisation_id: int, *objects) -> None:
    for obj in objects:
        if obj is not None and obj.organisation_id != organisation_id:
            raise Http404("no such team, person or task")


@dataclass(frozen=True, slots=True)
class LimitSpec:
    scope_kind: str
    unit: str
    amount: int  # nano-dollars or tokens
    period: str
    team: Team | None = None
    person: Person | None = None
    task: Task | None = None
    include_subteams: bool = False
    custom_start: dt.date | None = None
    custom_end: dt.date | None = None
    thresholds: Sequence[int] = (50, 80, 100)
    notify_emails: str = ""


def limit_create(*, actor: Actor, spec: LimitSpec) -> Limit:
    """Create a limit the actor may set; refused attempts are audited, then raised."""
    viewer = actor.viewer
    _in_organisation(viewer.organisation_id, spec.team, spec.person, spec.task)
    limit = Limit(
        organisation_id=viewer.organisation_id,
        scope_kind=spec.scope_kind,
        team=spec.team if spec.scope_kind in (ScopeKind.TEAM, ScopeKind.PERSON_DEFAULT) else None,
        person=spec.person if spec.scope_kind == ScopeKind.PERSON else None,
        task=spec.task if spec.scope_kind == ScopeKind.TASK else None,
        include_subteams=spec.include_subteams
        and spec.scope_kind in (ScopeKind.TEAM, ScopeKind.PERSON_DEFAULT),
        unit=spec.unit,
        amount=spec.amount,
        period=spec.period,
        custom_start=spec.custom_start if spec.period == Period.CUSTOM else None,
        custom_end=spec.custom_end if spec.period == Period.CUSTOM else None,
        created_by=actor.user if getattr(actor.user, "pk", None) else None,
    )
    _validate_shape(limit)
    limit.thresholds = _clean_thresholds(spec.thresholds)
    limit.notify_emails = clean_emails(spec.notify_emails)
    if not can_edit(viewer, limit):
        _refuse(actor, "scope outside the actor's teams", attempted=limit_snapshot(limit))
        raise Http404("no such team, person or task")
    tree = team_tree(viewer.organisation_id)
    try:
        _check_ceiling(actor, limit, tree)
    except LimitRefused as refusal:
        _refuse(actor, str(refusal), attempted=limit_snapshot(limit))
        raise
    if _duplicate_exists(limit):
        raise LimitInvalid("a limit on this scope, unit and period exists already: change that one")
    with transaction.atomic():
        limit.save()
        _audit(actor, AuditAction.CREATED, limit=limit, after=limit_snapshot(limit))
        _refresh_after_commit(limit)
    return limit


def _validate_shape(limit: Limit) -> None:
    if limit.scope_kind not in ScopeKind.values:
        raise LimitInvalid(f"unknown scope {limit.scope_kind!r}")
    needed = {
        ScopeKind.TEAM: limit.team_id,
        ScopeKind.PERSON_DEFAULT: limit.team_id,
        ScopeKind.PERSON: limit.person_id,
        ScopeKind.TASK: limit.task_id,
    }[limit.scope_kind]
    if needed is None:
        raise LimitInvalid(
            f"a {ScopeKind(limit.scope_kind).label.lower()} limit needs its {limit.scope_kind}"
        )
    if limit.unit not in Unit.values:
        raise LimitInvalid(f"unknown unit {limit.unit!r}")
    if limit.period not in Period.values:
        raise LimitInvalid(f"unknown period {limit.period!r}")
    if limit.amount is None or limit.amount <= 0:
        raise LimitInvalid("the amount must be more than zero")
    if limit.period == Period.CUSTOM and (
        limit.custom_start is None or limit.custom_end is None or limit.custom_end < limit.custom_start
    ):
        raise LimitInvalid("custom dates need a start and an end on or after it")


def _duplicate_exists(limit: Limit) -> bool:
    same = Limit.objects.filter(
        organisation_id=limit.organisation_id,
        is_active=True,
        scope_kind=limit.scope_kind,
        team_id=limit.team_id,
        person_id=limit.person_id,
        task_id=limit.task_id,
        unit=limit.unit,
        period=limit.period,
        custom_start=limit.custom_start,
        custom_end=limit.custom_end,
    )
    return same.exclude(pk=limit.pk).exists()


def limit_update(
    *,
    actor: Actor,
    limit_id: int,
    amount: int | None = None,
    thresholds: Sequence[int] | None = None,
    notify_emails: str | None = None,
) -> Limit:
    """Change a limit's amount, thresholds or recipients. Scope, unit and period are fixed once set."""
    viewer = actor.viewer
    limit = _editable_limit(actor, limit_id)
    before = limit_snapshot(limit)
    attempted = dict(before)
    if amount is not None:
        if amount <= 0:
            raise LimitInvalid("the amount must be more than zero")
        attempted["amount"] = amount
    if thresholds is not None:
        attempted["thresholds"] = _clean_thresholds(thresholds)
    if notify_emails is not None:
        attempted["notify_emails"] = clean_emails(notify_emails)
    if attempted == before:
        return limit  # nothing changes, nothing to audit
    tree = team_tree(viewer.organisation_id)
    raising = attempted["amount"] > before["amount"]
    if raising and _contains_person(limit, viewer.person_id, tree):
        reason = "nobody raises a limit that applies to themself"
        _refuse(actor, reason, limit=limit, attempted=attempted)
        raise LimitRefused(f"{reason}: ask whoever manages your team")
    candidate = Limit(**{f.attname: getattr(limit, f.attname) for f in Limit._meta.concrete_fields})
    candidate.amount = attempted["amount"]
    try:
        _check_ceiling(actor, candidate, tree)
    except LimitRefused as refusal:
        _refuse(actor, str(refusal), limit=limit, attempted=attempted)
        raise
    with transaction.atomic():
        Limit.objects.filter(pk=limit.pk).update(
            amount=attempted["amount"],
            thresholds=attempted["thresholds"],
            notify_emails=attempted["notify_emails"],
            updated_at=timezone.now(),
        )
        limit.refresh_from_db()
        _audit(actor, AuditAction.UPDATED, limit=limit, before=before, after=limit_snapshot(limit))
        _refresh_after_commit(limit)
    return limit


def limit_deactivate(*, actor: Actor, limit_id: int) -> Limit:
    """Switch a limit off. Removing a limit is raising it, so nobody removes one that applies to themself."""
    limit = _editable_limit(actor, limit_id)
    if not limit.is_active:
        return limit
    before = limit_snapshot(limit)
    if _contains_person(limit, actor.viewer.person_id, team_tree(actor.viewer.organisation_id)):
        reason = "nobody removes a limit that applies to themself"
        _refuse(actor, reason, limit=limit, attempted={**before, "is_active": False})
        raise LimitRefused(f"{reason}: ask whoever manages your team")
    with transaction.atomic():
        Limit.objects.filter(pk=limit.pk).update(is_active=False, updated_at=timezone.now())
        limit.refresh_from_db()
        _audit(actor, AuditAction.DEACTIVATED, limit=limit, before=before, after=limit_snapshot(limit))
        # Its states go with it, so the check API stops answering with it at once.
        LimitState.objects.filter(limit=limit).delete()
        _bump_state_version(limit.organisation_id)
    return limit


def _editable_limit(actor: Actor, limit_id: int) -> Limit:
    limit = (
        Limit.objects.filter(organisation_id=actor.viewer.organisation_id, pk=limit_id)
        .select_related("team", "person__team", "task")
        .first()
    )
    if limit is None or not can_edit(actor.viewer, limit):
        _refuse(actor, f"limit {limit_id} is outside the actor's scope")
        raise Http404("no such limit")
    return limit


def budget_settings_update(
    *, actor: Actor, fiscal_year_start_month: int, alert_emails: str, webhook_url: str
) -> BudgetSettings:
    """CIO and FinOps only: the fiscal year, and who hears about every alert."""
    if not actor.viewer.sees_organisation:
        _refuse(actor, "budget settings are for CIO and FinOps")
        raise Http404("no such page")
    if not 1 <= fiscal_year_start_month <= 12:
        raise LimitInvalid("the fiscal year starts in a month from 1 (January) to 12 (December)")
    if webhook_url:
        try:
            URLValidator(schemes=["https", "http"])(webhook_url)
        except ValidationError:
            raise LimitInvalid("the webhook must be an http(s) URL") from None
    organisation = Organisation.objects.get(pk=actor.viewer.organisation_id)
    current = budget_settings_get(organisation)
    before = {
        "fiscal_year_start_month": current.fiscal_year_start_month,
        "alert_emails": current.alert_emails,
        "webhook": bool(current.webhook_url),  # the URL is a secret for Slack: the trail says only if set
    }
    current.fiscal_year_start_month = fiscal_year_start_month
    current.alert_emails = clean_emails(alert_emails)
    webhook_changed = webhook_url != current.webhook_url
    current.webhook_url = webhook_url
    after = {
        "fiscal_year_start_month": current.fiscal_year_start_month,
        "alert_emails": current.alert_emails,
        "webhook": bool(current.webhook_url),
    }
    if after == before and not webhook_changed:
        return current
    with transaction.atomic():
        current.save()
        _audit(
            actor, AuditAction.SETTINGS, before=before, after={**after, "webhook_changed": webhook_changed}
        )
        organisation_id = organisation.pk
        transaction.on_commit(lambda: state_refresh(organisation_id=organisation_id))
    return current


def _refresh_after_commit(limit: Limit) -> None:
    organisation_id, limit_id = limit.organisation_id, limit.pk
    transaction.on_commit(lambda: state_refresh(organisation_id=organisation_id, limit_ids=[limit_id]))


# --- the state refresh -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefreshSummary:
    states: int
    days_recomputed: int
    alerts_raised: int


@dataclass(slots=True)
class _Wanted:
    limit: Limit
    person_id: int | None
    scope: str
    subjects: list[str]
    period: tuple[dt.date, dt.date]


def _wanted_states(
    limits: Sequence[Limit], tree: TeamTree, today: dt.date, fiscal_month: int
) -> list[_Wanted]:
    people = list(Person.objects.filter(organisation_id=limits[0].organisation_id).values_list(
        "pk", "team_id", "email", "is_active"))  # fmt: skip
    own_limits = {
        (limit.person_id, limit.unit, limit.period, limit.custom_start, limit.custom_end)
        for limit in Limit.objects.filter(
            organisation_id=limits[0].organisation_id, scope_kind=ScopeKind.PERSON, is_active=True
        )
    }
    emails = {pk: email for pk, _, email, _ in people}
    wanted = []
    for limit in limits:
        period = period_bounds(
            limit.period,
            today,
            fiscal_year_start_month=fiscal_month,
            custom_start=limit.custom_start,
            custom_end=limit.custom_end,
        )
        if limit.scope_kind == ScopeKind.TEAM:
            covered = limit_covered_teams(limit, tree)
            subjects = [f"t:{team_id}" for team_id in sorted(covered)]
            wanted.append(_Wanted(limit, None, f"team:{tree.slugs[limit.team_id]}", subjects, period))
        elif limit.scope_kind == ScopeKind.PERSON:
            wanted.append(
                _Wanted(limit, None, f"person:{emails[limit.person_id]}", [f"p:{limit.person_id}"], period)
            )
        elif limit.scope_kind == ScopeKind.TASK:
            wanted.append(_Wanted(limit, None, f"task:{limit.task.key}", [f"k:{limit.task_id}"], period))
        else:
            covered = limit_covered_teams(limit, tree)
            for person_id, team_id, email, active in people:
                # A person's own limit of the same kind replaces the default for them.
                key = (person_id, limit.unit, limit.period, limit.custom_start, limit.custom_end)
                if active and team_id in covered and key not in own_limits:
                    wanted.append(_Wanted(limit, person_id, f"person:{email}", [f"p:{person_id}"], period))
    return wanted


def _amount_of(limit: Limit, person_id: int | None, tree: TeamTree):
    """(dimension, ids) whose rollup amounts add up to this state's spend."""
    if limit.scope_kind == ScopeKind.TEAM:
        return "team", limit_covered_teams(limit, tree)
    if limit.scope_kind == ScopeKind.PERSON:
        return "person", frozenset({limit.person_id})
    if limit.scope_kind == ScopeKind.TASK:
        return "task", frozenset({limit.task_id})
    return "person", frozenset({person_id})


def state_refresh(
    *,
    organisation_id: int,
    days: Iterable[dt.date] | None = None,
    limit_ids: Iterable[int] | None = None,
    now: dt.datetime | None = None,
) -> RefreshSummary:
    """Bring the budget states of an organisation up to date, raise due alerts, queue their delivery.

    `days`: the organisation-local days whose rollups changed (None: recompute every day of every period).
    New states, and states whose period rolled over, are always computed in full.
    """
    if not LimitState.objects.filter(organisation_id=organisation_id).exists() and not (
        Limit.objects.filter(organisation_id=organisation_id, is_active=True).exists()
    ):
        return RefreshSummary(0, 0, 0)  # the common case for an organisation without budgets: two lookups
    organisation = Organisation.objects.get(pk=organisation_id)
    settings_row = budget_settings_get(organisation)
    now = now or timezone.now()
    today = local_today(organisation.time_zone, now)
    fraction_left = local_day_fraction_left(organisation.time_zone, now)
    changed_days = None if days is None else set(days)
    with transaction.atomic():
        # One refresh per organisation at a time (PostgreSQL; SQLite serialises writers anyway).
        BudgetSettings.objects.select_for_update().filter(pk=settings_row.pk).first()
        limits_query = Limit.objects.filter(organisation_id=organisation_id).select_related(
            "team", "person", "task"
        )
        if limit_ids is not None:
            limits_query = limits_query.filter(pk__in=list(limit_ids))
        LimitState.objects.filter(limit__in=limits_query.filter(is_active=False)).delete()
        limits = list(limits_query.filter(is_active=True))
        if not limits:
            return RefreshSummary(0, 0, 0)
        tree = team_tree(organisation_id)
        wanted = _wanted_states(limits, tree, today, settings_row.fiscal_year_start_month)
        states, full = _sync_states(limits, wanted, now)
        recomputed = _recompute_days(organisation_id, wanted, states, full, changed_days, tree)
        _update_states(states, wanted, today, fraction_left, ledger_first_day(organisation_id), now)
        _rebuild_check_entries(organisation_id, limits, wanted, states)
        raised = _raise_alerts(organisation, settings_row, wanted, states)
        _bump_state_version(organisation_id)
        if raised:
            transaction.on_commit(lambda: _queue_delivery(organisation_id))
    return RefreshSummary(len(states), recomputed, raised)


def _bump_state_version(organisation_id: int) -> None:
    """Tell the check API's processes that states changed (they poll this number)."""
    BudgetSettings.objects.filter(organisation_id=organisation_id).update(
        state_version=F("state_version") + 1
    )


def _key(item: _Wanted) -> tuple[int, int | None]:
    return item.limit.pk, item.person_id


def _sync_states(
    limits: Sequence[Limit], wanted: Sequence[_Wanted], now: dt.datetime
) -> tuple[dict[tuple[int, int | None], LimitState], set[tuple[int, int | None]]]:
    """Create missing states, drop obsolete ones; returns the states and those needing a full recompute."""
    existing = {(s.limit_id, s.person_id): s for s in LimitState.objects.filter(limit__in=limits)}
    wanted_keys = {_key(item) for item in wanted}
    obsolete = [state.pk for key, state in existing.items() if key not in wanted_keys]
    if obsolete:
        LimitState.objects.filter(pk__in=obsolete).delete()
    full: set[tuple[int, int | None]] = set()
    new = []
    for item in wanted:
        state = existing.get(_key(item))
        start, end = item.period
        if state is None:
            new.append(
                LimitState(
                    organisation_id=item.limit.organisation_id,
                    limit=item.limit,
                    person_id=item.person_id,
                    scope=item.scope,
                    unit=item.limit.unit,
                    limit_amount=item.limit.amount,
                    recurring=item.limit.period != Period.CUSTOM,
                    period_start=start,
                    period_end=end,
                    refreshed_at=now,
                )
            )
            full.add(_key(item))
        elif (state.period_start, state.period_end, state.unit) != (start, end, item.limit.unit):
            full.add(_key(item))  # a new period, or another unit: nothing stored is reusable
    if new:
        LimitState.objects.bulk_create(new)
    states = {(s.limit_id, s.person_id): s for s in LimitState.objects.filter(limit__in=limits)}
    return states, full


def _recompute_days(
    organisation_id: int,
    wanted: Sequence[_Wanted],
    states: dict[tuple[int, int | None], LimitState],
    full: set[tuple[int, int | None]],
    changed_days: set[dt.date] | None,
    tree: TeamTree,
) -> int:
    """Rewrite StateDay rows for the days that changed (all days of a window for full recomputes)."""
    plans = []  # (state, window start, window end, days to recompute or None for all)
    for item in wanted:
        state = states[_key(item)]
        start, end = item.period
        window_start = start - dt.timedelta(days=forecasting.LOOKBACK_DAYS)
        if _key(item) in full or changed_days is None:
            plans.append((item, state, window_start, end, None))
        else:
            todo = {day for day in changed_days if window_start <= day <= end}
            if todo:
                plans.append((item, state, window_start, end, todo))
    if not plans:
        return 0
    # One grouped rollup query per dimension, over the union of what the plans need.
    needs: dict[str, tuple[dt.date, dt.date, set[dt.date] | None]] = {}
    for item, _, window_start, end, todo in plans:
        dimension, _ = _amount_of(item.limit, item.person_id, tree)
        low, high, days = needs.get(dimension, (window_start, end, set()))
        low, high = min(low, window_start), max(high, end)
        days = None if (todo is None or days is None) else days | todo
        needs[dimension] = (low, high, days)
    amounts = {
        dimension: daily_amounts(organisation_id, dimension, days=days, start=low, end=high)
        for dimension, (low, high, days) in needs.items()
    }
    by_dimension_day: dict[str, dict[dt.date, dict[int, tuple[int, int]]]] = {}
    for dimension, rows in amounts.items():
        index: dict[dt.date, dict[int, tuple[int, int]]] = defaultdict(dict)
        for (object_id, day), value in rows.items():
            index[day][object_id] = value
        by_dimension_day[dimension] = index

    # Clear what is recomputed: every day of a full recompute, the changed days of the others (a changed day
    # outside a state's window has no row to clear), and days that fell out of a window.
    full_ids = [state.pk for _, state, _, _, todo in plans if todo is None]
    partial_ids = [state.pk for _, state, _, _, todo in plans if todo is not None]
    StateDay.objects.filter(state_id__in=full_ids).delete()
    if partial_ids and changed_days:
        StateDay.objects.filter(state_id__in=partial_ids, day__in=sorted(changed_days)).delete()
    windows: dict[dt.date, list[int]] = defaultdict(list)
    for _, state, window_start, _, _ in plans:
        windows[window_start].append(state.pk)
    for window_start, state_ids in windows.items():
        StateDay.objects.filter(state_id__in=state_ids, day__lt=window_start).delete()

    recomputed = 0
    new_rows = []
    for item, state, window_start, end, todo in plans:
        dimension, ids = _amount_of(item.limit, item.person_id, tree)
        column = 0 if item.limit.unit == Unit.USD else 1
        index = by_dimension_day[dimension]
        days = sorted(todo) if todo is not None else [day for day in index if window_start <= day <= end]
        recomputed += len(todo) if todo is not None else (end - window_start).days + 1
        for day in days:
            values = index.get(day, {})
            total = sum(values[object_id][column] for object_id in ids if object_id in values)
            if total:
                new_rows.append(StateDay(state=state, day=day, amount=total))
    StateDay.objects.bulk_create(new_rows, batch_size=2000)
    return recomputed


def _update_states(
    states: dict[tuple[int, int | None], LimitState],
    wanted: Sequence[_Wanted],
    today: dt.date,
    fraction_left: float,
    data_start: dt.date | None,
    now: dt.datetime,
) -> None:
    daily = state_daily(state.pk for state in states.values())
    for item in wanted:
        state = states[_key(item)]
        start, end = item.period
        amounts = daily.get(state.pk, {})
        state.scope = item.scope
        state.unit = item.limit.unit
        state.limit_amount = item.limit.amount
        state.recurring = item.limit.period != Period.CUSTOM
        state.period_start, state.period_end = start, end
        state.spent = sum(amount for day, amount in amounts.items() if start <= day <= end)
        state.refreshed_at = now
        projection = None
        if start <= today <= end:
            projection = forecasting.project(
                amounts,
                period_start=start,
                period_end=end,
                today=today,
                limit=state.limit_amount,
                today_fraction_left=fraction_left,
                data_start=data_start,
            )
        if projection is None:
            state.projected = state.projected_low = state.projected_high = None
            state.exhaustion_date = forecasting.exhaustion_date(
                amounts, (), state.limit_amount, start, min(today, end)
            )
        else:
            state.projected, state.projected_low, state.projected_high = (
                projection.projected,
                projection.low,
                projection.high,
            )
            state.exhaustion_date = projection.exhaustion_date
    LimitState.objects.bulk_update(
        states.values(),
        [
            "scope",
            "unit",
            "limit_amount",
            "recurring",
            "period_start",
            "period_end",
            "spent",
            "projected",
            "projected_low",
            "projected_high",
            "exhaustion_date",
            "refreshed_at",
        ],
        batch_size=500,
    )


def _rebuild_check_entries(
    organisation_id: int,
    limits: Sequence[Limit],
    wanted: Sequence[_Wanted],
    states: dict[tuple[int, int | None], LimitState],
) -> None:
    # Readers of the check API see the old entries until this transaction commits, then the new ones.
    CheckEntry.objects.filter(state__limit__in=limits).delete()
    CheckEntry.objects.bulk_create(
        [
            CheckEntry(organisation_id=organisation_id, subject=subject, state=states[_key(item)])
            for item in wanted
            for subject in item.subjects
        ],
        batch_size=2000,
    )


# --- alerts ----------------------------------------------------------------------------------------------


def alert_message(state: LimitState, limit: Limit, kind: str, threshold: int, person_name: str | None) -> str:
    who = person_name if person_name else scope_label(limit)
    what = (
        f"{period_label(limit)} budget"
        if limit.period != Period.CUSTOM
        else f"budget for {period_label(limit)}"
    )
    if limit.scope_kind == ScopeKind.PERSON_DEFAULT:
        what = f"{what} per person in {limit.team.name}"
    spent, cap = amount_text(state.spent, state.unit), amount_text(state.limit_amount, state.unit)
    if kind == AlertKind.FORECAST:
        possessive = f"{who}'s" if not who.endswith("s") else f"{who}'"
        return (
            f"At this rate {possessive} {what} runs out on {state.exhaustion_date:%-d %B}: "
            f"{amount_text(state.projected, state.unit)} projected against {cap} "
            f"({spent} spent so far)."
        )
    subject = who[0].upper() + who[1:]
    if threshold == 100:
        return f"{subject} has reached the {what}: {spent} of {cap}."
    return f"{subject} has used {threshold}% of the {what}: {spent} of {cap}."


def _raise_alerts(
    organisation: Organisation,
    settings_row: BudgetSettings,
    wanted: Sequence[_Wanted],
    states: dict[tuple[int, int | None], LimitState],
) -> int:
    """Create the alerts now due; the unique constraints make a second refresh create none."""
    items = list(wanted)
    fired = set(
        Alert.objects.filter(
            limit__in={item.limit.pk for item in items},
            period_start__in={states[_key(item)].period_start for item in items},
        ).values_list("limit_id", "person_id", "period_start", "kind", "threshold")
    )
    names = dict(
        Person.objects.filter(pk__in={item.person_id for item in items if item.person_id}).values_list(
            "pk", "name"
        )
    )
    emails = dict(
        Person.objects.filter(
            Q(pk__in={item.person_id for item in items if item.person_id})
            | Q(pk__in={item.limit.person_id for item in items if item.limit.person_id})
        ).values_list("pk", "email")
    )
    new: list[Alert] = []
    for item in items:
        state = states[_key(item)]
        limit = item.limit
        due = [
            (AlertKind.THRESHOLD, threshold)
            for threshold in limit.thresholds
            if state.spent * 100 >= threshold * state.limit_amount
        ]
        if (
            state.projected is not None
            and state.projected > state.limit_amount
            and state.spent < state.limit_amount
            and state.exhaustion_date is not None
        ):
            due.append((AlertKind.FORECAST, 100))
        due = [
            (kind, t)
            for kind, t in due
            if (limit.pk, item.person_id, state.period_start, kind, t) not in fired
        ]
        if not due:
            continue
        # Several thresholds crossed at once (a limit set below today's spend): send only the highest.
        highest = max((t for kind, t in due if kind == AlertKind.THRESHOLD), default=None)
        person_id = item.person_id or limit.person_id
        recipients = [settings_row.alert_emails, limit.notify_emails, emails.get(person_id, "")]
        for kind, threshold in due:
            superseded = kind == AlertKind.THRESHOLD and threshold != highest
            new.append(
                Alert(
                    organisation=organisation,
                    limit=limit,
                    person_id=item.person_id,
                    period_start=state.period_start,
                    period_end=state.period_end,
                    kind=kind,
                    threshold=threshold,
                    unit=state.unit,
                    spent=state.spent,
                    limit_amount=state.limit_amount,
                    projected=state.projected,
                    exhaustion_date=state.exhaustion_date,
                    message=alert_message(state, limit, kind, threshold, names.get(item.person_id)),
                    status=AlertStatus.SUPERSEDED if superseded else AlertStatus.PENDING,
                    email_recipients=", ".join(sorted(_split_emails(recipients))),
                    webhook_url=settings_row.webhook_url,
                )
            )
    # A concurrent refresh may have raised the same alert a moment ago: the constraint keeps one.
    Alert.objects.bulk_create(new, ignore_conflicts=True)
    return sum(1 for alert in new if alert.status == AlertStatus.PENDING)


def _split_emails(parts: Iterable[str]) -> set[str]:
    return {email.strip().lower() for part in parts for email in part.split(",") if email.strip()}


def _queue_delivery(organisation_id: int) -> None:
    from apps.budgets.tasks import deliver_alerts  # tasks import this module

    deliver_alerts.delay(organisation_id)


# --- delivery --------------------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401 - urllib's signature
        return None  # a webhook that redirects is misconfigured; never re-send the payload elsewhere


_opener = urllib.request.build_opener(_NoRedirects)


def webhook_payload(alert: Alert, organisation: Organisation) -> dict:
    """Slack-compatible: `text` is what a Slack or Teams incoming webhook shows; the rest is for machines."""
    return {
        "text": f"SpendWatch ({organisation.name}): {alert.message}",
        "alert": {
            "id": alert.pk,
            "kind": alert.kind,
            "threshold": alert.threshold,
            "limit": alert.limit_id,
            "period_start": alert.period_start.isoformat(),
            "period_end": alert.period_end.isoformat(),
            "unit": alert.unit,
            "spent": _wire_amount(alert.spent, alert.unit),
            "limit_amount": _wire_amount(alert.limit_amount, alert.unit),
            "projected": _wire_amount(alert.projected, alert.unit),
            "exhaustion_date": alert.exhaustion_date.isoformat() if alert.exhaustion_date else None,
        },
    }


def _wire_amount(amount: int | None, unit: str) -> str | int | None:
    if amount is None:
        return None
    return f"{Decimal(amount).scaleb(-9):.9f}" if unit == Unit.USD else amount


def _post_webhook(url: str, payload: dict) -> None:
    if not url.lower().startswith(("https://", "http://")):
        raise ValueError("the webhook is not an http(s) URL")
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "SpendWatch budget alerts"},
        method="POST",
    )
    with _opener.open(request, timeout=settings.SPENDWATCH_BUDGET_NOTIFY_TIMEOUT_SECONDS) as response:
        if not 200 <= response.status < 300:
            raise ValueError(f"the webhook answered HTTP {response.status}")


def _send_email(alert: Alert, organisation: Organisation) -> None:
    context = {"alert": alert, "organisation": organisation, "amount": amount_text}
    context["spent"] = amount_text(alert.spent, alert.unit)
    context["limit_amount"] = amount_text(alert.limit_amount, alert.unit)
    context["projected"] = amount_text(alert.projected, alert.unit) if alert.projected is not None else None
    subject = " ".join(render_to_string("budgets/email/alert-subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("budgets/email/alert-body.txt", context),
        to=[email.strip() for email in alert.email_recipients.split(",") if email.strip()],
        connection=get_connection(timeout=settings.SPENDWATCH_BUDGET_NOTIFY_TIMEOUT_SECONDS),
    )
    message.attach_alternative(render_to_string("budgets/email/alert-body.html", context), "text/html")
    message.send()


def _error_text(error: Exception) -> str:
    # Never the URL: a Slack webhook URL is a credential.
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return f"{type(error.reason).__name__}: {error.reason}"[:300]
    return f"{type(error).__name__}: {error}"[:300]


@dataclass(frozen=True, slots=True)
class DeliverySummary:
    sent: int
    failed: int
    retry: int


def alerts_deliver(*, organisation_id: int, now: dt.datetime | None = None) -> DeliverySummary:
    """Send pending alerts by email and webhook; each channel at most once per alert, even run twice at once.

    An alert is claimed with a conditional update before anything is sent, so two workers never both send
    it; a channel that succeeded is stamped and never retried; a failing one is retried on the next run
    until SPENDWATCH_BUDGET_ALERT_MAX_ATTEMPTS.
    """
    now = now or timezone.now()
    organisation = Organisation.objects.get(pk=organisation_id)
    max_attempts = settings.SPENDWATCH_BUDGET_ALERT_MAX_ATTEMPTS
    claimable = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    pending = Alert.objects.filter(claimable, organisation_id=organisation_id, status=AlertStatus.PENDING)
    sent = failed = retry = 0
    for alert_id in list(pending.order_by("pk").values_list("pk", flat=True)):
        claim_until = now + dt.timedelta(seconds=10 * settings.SPENDWATCH_BUDGET_NOTIFY_TIMEOUT_SECONDS + 60)
        claimed = Alert.objects.filter(claimable, pk=alert_id, status=AlertStatus.PENDING).update(
            claimed_until=claim_until
        )
        if not claimed:
            continue
        alert = Alert.objects.get(pk=alert_id)
        updates: dict = {"attempts": alert.attempts + 1, "claimed_until": None}
        ok = True
        if alert.email_recipients and alert.email_sent_at is None:
            try:
                _send_email(alert, organisation)
                updates.update(email_sent_at=timezone.now(), email_error="")
            except Exception as error:  # any transport failure is recorded, the other channel still runs
                ok = False
                updates["email_error"] = _error_text(error)
                logger.warning("budget alert %s: email failed: %s", alert_id, updates["email_error"])
        if alert.webhook_url and alert.webhook_sent_at is None:
            try:
                _post_webhook(alert.webhook_url, webhook_payload(alert, organisation))
                updates.update(webhook_sent_at=timezone.now(), webhook_error="")
            except Exception as error:
                ok = False
                updates["webhook_error"] = _error_text(error)
                logger.warning("budget alert %s: webhook failed: %s", alert_id, updates["webhook_error"])
        if ok:
            updates["status"] = AlertStatus.SENT
            sent += 1
        elif updates["attempts"] >= max_attempts:
            updates["status"] = AlertStatus.FAILED
            failed += 1
        else:
            retry += 1
        Alert.objects.filter(pk=alert_id).update(**updates)
    return DeliverySummary(sent, failed, retry)


def organisations_with_limits() -> list[int]:
    return list(Limit.objects.filter(is_active=True).values_list("organisation_id", flat=True).distinct())
