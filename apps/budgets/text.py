"""How budgets read in messages, pages and emails: amounts, scopes and periods in words."""

from __future__ import annotations

from decimal import Decimal

from apps.budgets.models import Limit, Period, ScopeKind, Unit
from apps.budgets.periods import PERIOD_NAMES
from apps.usage.models import NANOS_PER_USD


def amount_text(amount: int | None, unit: str) -> str:
    if amount is None:
        return "–"
    if unit == Unit.USD:
        return f"${(Decimal(amount) / NANOS_PER_USD).quantize(Decimal('0.01')):,}"
    return f"{amount:,} tokens"


def scope_label(limit: Limit) -> str:
    """ "the Platform team", "Alice Smith", "the Code review task", "each person in Platform"."""
    if limit.scope_kind == ScopeKind.TEAM:
        suffix = " (with its sub-teams)" if limit.include_subteams else ""
        return f"the {limit.team.name} team{suffix}"
    if limit.scope_kind == ScopeKind.PERSON:
        return limit.person.name
    if limit.scope_kind == ScopeKind.TASK:
        return f"the {limit.task.name} task"
    below = " and its sub-teams" if limit.include_subteams else ""
    return f"each person in {limit.team.name}{below}"


def period_label(limit: Limit) -> str:
    if limit.period == Period.CUSTOM:
        return f"{limit.custom_start:%-d %b %Y} – {limit.custom_end:%-d %b %Y}"
    return PERIOD_NAMES[limit.period]
