"""Reads of the ledger. Every selector takes the viewer first; dashboards, API, CLI and digests call these."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Sum

from apps.accounts.scoping import Viewer, scope_usage
from apps.catalog.models import AIModel, Provider
from apps.org.models import Person, Task, Team
from apps.usage.columns import TOKEN_COLUMNS
from apps.usage.models import DailyRollup
from apps.usage.money import usd_text

GROUPS = ("team", "person", "task", "provider", "model")
# What the group of rows without this dimension is called on a page.
MISSING_LABELS = {
    "team": "Unattributed",
    "person": "No person (shared keys and projects)",
    "task": "No task",
    "provider": "Unknown provider",
    "model": "Unknown model",
}
TOKEN_FIELDS = TOKEN_COLUMNS


@dataclass(frozen=True, slots=True)
class SpendGroup:
    key: str | None  # None: the unattributed group
    label: str
    object_id: int | None
    cost_nanos: int
    unpriced_rows: int
    requests: int | None
    input_uncached_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "cost_usd": usd_text(self.cost_nanos),
            "unpriced_rows": self.unpriced_rows,
            "requests": self.requests,
            "input_uncached_tokens": self.input_uncached_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


def _labels(group_by: str, ids: set[int]) -> dict[int, tuple[str, str]]:
    """id -> (key, label) for the groups present; one query."""
    if group_by == "team":
        return {
            pk: (slug, name)
            for pk, slug, name in Team.objects.filter(pk__in=ids).values_list("pk", "slug", "name")
        }
    if group_by == "person":
        return {
            pk: (email, name)
            for pk, email, name in Person.objects.filter(pk__in=ids).values_list("pk", "email", "name")
        }
    if group_by == "task":
        return {
            pk: (key, name)
            for pk, key, name in Task.objects.filter(pk__in=ids).values_list("pk", "key", "name")
        }
    if group_by == "provider":
        return {
            pk: (slug, name)
            for pk, slug, name in Provider.objects.filter(pk__in=ids).values_list("pk", "slug", "name")
        }
    rows = AIModel.objects.filter(pk__in=ids).values_list("pk", "provider__slug", "name")
    return {pk: (f"{provider}/{name}", name) for pk, provider, name in rows}


def _rollups(
    viewer: Viewer, start: dt.date, end: dt.date, team_ids: frozenset[int] | None, person_id: int | None
):
    rows = scope_usage(DailyRollup.objects.all(), viewer).filter(day__gte=start, day__lte=end)
    if team_ids is not None:
        rows = rows.filter(team_id__in=team_ids)
    if person_id is not None:
        rows = rows.filter(person_id=person_id)
    return rows


def spend(
    viewer: Viewer,
    *,
    group_by: str,
    start: dt.date,
    end: dt.date,
    team_ids: frozenset[int] | None = None,
    person_id: int | None = None,
) -> list[SpendGroup]:
    """Totals per group for organisation-local days start..end (inclusive), largest cost first.

    `team_ids` / `person_id` narrow further (a team page, a person page); scope always applies first.
    """
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    column = f"{group_by}_id"
    rows = (
        _rollups(viewer, start, end, team_ids, person_id)
        .values(column)
        .annotate(
            cost=Sum("cost_nanos"),
            unpriced=Sum("unpriced_rows"),
            request_count=Sum("requests"),
            **{f"sum_{field}": Sum(field) for field in TOKEN_FIELDS},
        )
        .order_by()
    )
    rows = list(rows)
    labels = _labels(group_by, {row[column] for row in rows if row[column] is not None})
    groups = []
    for row in rows:
        key, label = labels.get(row[column], (None, MISSING_LABELS[group_by]))
        groups.append(
            SpendGroup(
                key=key,
                label=label,
                object_id=row[column],
                cost_nanos=row["cost"] or 0,
                unpriced_rows=row["unpriced"] or 0,
                requests=row["request_count"],
                input_uncached_tokens=row["sum_input_uncached_tokens"] or 0,
                cache_read_tokens=row["sum_cache_read_tokens"] or 0,
                cache_write_tokens=(row["sum_cache_write_5m_tokens"] or 0)
                + (row["sum_cache_write_1h_tokens"] or 0),
                output_tokens=row["sum_output_tokens"] or 0,
                reasoning_tokens=row["sum_reasoning_tokens"] or 0,
            )
        )
    groups.sort(key=lambda group: (-group.cost_nanos, group.key is None, group.key or ""))
    return groups


@dataclass(frozen=True, slots=True)
class DailyPoint:
    day: dt.date
    series: str
    cost_nanos: int


def daily_spend(
    viewer: Viewer,
    *,
    series: str,
    start: dt.date,
    end: dt.date,
    team_ids: frozenset[int] | None = None,
    person_id: int | None = None,
) -> list[DailyPoint]:
    """Cost per day and per provider/team/model (the series), for trend charts."""
    if series not in GROUPS:
        raise ValueError(f"series must be one of {', '.join(GROUPS)}")
    column = f"{series}_id"
    rows = list(
        _rollups(viewer, start, end, team_ids, person_id)
        .values("day", column)
        .annotate(cost=Sum("cost_nanos"))
        .order_by("day")
    )
    labels = _labels(series, {row[column] for row in rows if row[column] is not None})
    return [
        DailyPoint(row["day"], labels.get(row[column], (None, "Unattributed"))[1], row["cost"] or 0)
        for row in rows
    ]
