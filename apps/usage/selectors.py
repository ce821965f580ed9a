"""Reads of the ledger. Every selector takes the viewer first; dashboards, API, CLI and digests call these."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.http import Http404

from apps.accounts.scoping import Viewer, scope_usage
from apps.catalog.models import AIModel, Provider
from apps.org.models import Person, Task, Team
from apps.usage.columns import TOKEN_COLUMNS
from apps.usage.models import DailyRollup, UsageFact
from apps.usage.money import usd_text
from apps.usage.reconcile import Layer, layer_expression, source_layers

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
    # The buckets of cost_nanos (see Buckets); defaults keep older callers working.
    list_cost_nanos: int = 0
    billed_nanos: int = 0
    estimated_nanos: int = 0
    unpriced_reported_nanos: int = 0
    attributed_nanos: int = 0

    @property
    def buckets(self) -> Buckets:
        return Buckets(
            cost_nanos=self.cost_nanos,
            list_cost_nanos=self.list_cost_nanos,
            billed_nanos=self.billed_nanos,
            estimated_nanos=self.estimated_nanos,
            unpriced_rows=self.unpriced_rows,
            unpriced_reported_nanos=self.unpriced_reported_nanos,
            attributed_nanos=self.attributed_nanos,
        )

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
            **self.buckets.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class Buckets:
    """Where a total's dollars come from, and who owns them. Every counted dollar is in exactly one of
    billed / computed / estimated, and in exactly one of attributed / unattributed.

    - billed: invoice lines (and the part of a bill per-request logs do not explain);
    - computed: tokens priced by SpendWatch (net of the organisation's overrides);
    - estimated: a cost taken from a source's own figure that is not an invoice (e.g. a gateway's charge
      for a failed request), where no price priced the row;
    - unpriced: rows no price knows - counted as nothing; what their sources reported for them is shown
      beside (`unpriced_reported`), never added to a total.
    `list` is the same total at list prices (before the organisation's discounts and custom prices).
    """

    cost_nanos: int = 0
    list_cost_nanos: int = 0
    billed_nanos: int = 0
    estimated_nanos: int = 0
    unpriced_rows: int = 0
    unpriced_reported_nanos: int = 0
    attributed_nanos: int = 0

    @property
    def computed_nanos(self) -> int:
        return self.cost_nanos - self.billed_nanos - self.estimated_nanos

    @property
    def unattributed_nanos(self) -> int:
        return self.cost_nanos - self.attributed_nanos

    def __add__(self, other: Buckets) -> Buckets:
        return Buckets(*(getattr(self, name) + getattr(other, name) for name in BUCKET_FIELDS))

    def as_dict(self) -> dict:
        """The bucket fields of the spend JSON, the API and the exports (exact decimal strings)."""
        return {
            "list_cost_usd": usd_text(self.list_cost_nanos),
            "billed_usd": usd_text(self.billed_nanos),
            "computed_usd": usd_text(self.computed_nanos),
            "estimated_usd": usd_text(self.estimated_nanos),
            "unpriced_reported_usd": usd_text(self.unpriced_reported_nanos),
            "attributed_usd": usd_text(self.attributed_nanos),
            "unattributed_usd": usd_text(self.unattributed_nanos),
        }


BUCKET_FIELDS = (
    "cost_nanos",
    "list_cost_nanos",
    "billed_nanos",
    "estimated_nanos",
    "unpriced_rows",
    "unpriced_reported_nanos",
    "attributed_nanos",
)
# The spend table's columns (CLI CSV, CSV downloads): the contract's keys, then the buckets.
SPEND_FIELDS = (
    "key",
    "cost_usd",
    "unpriced_rows",
    "requests",
    "input_uncached_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "list_cost_usd",
    "billed_usd",
    "computed_usd",
    "estimated_usd",
    "unpriced_reported_usd",
    "attributed_usd",
    "unattributed_usd",
)


def total_buckets(groups: list[SpendGroup]) -> Buckets:
    """The buckets of a whole table (the sum of its groups: no extra query)."""
    total = Buckets()
    for group in groups:
        total = total + group.buckets
    return total


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
            list_cost=Sum("list_cost_nanos"),
            billed=Sum("billed_cost_nanos"),
            estimated=Sum("estimated_cost_nanos"),
            unpriced_reported=Sum("unpriced_reported_nanos"),
            attributed=Sum("cost_nanos", filter=Q(team_id__isnull=False)),
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
                list_cost_nanos=row["list_cost"] or 0,
                billed_nanos=row["billed"] or 0,
                estimated_nanos=row["estimated"] or 0,
                unpriced_reported_nanos=row["unpriced_reported"] or 0,
                attributed_nanos=row["attributed"] or 0,
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


UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ReconciliationRow:
    """One provider-day: what the bill says, what our prices say, what the gateway said.

    None is unknown, never zero: a day without billing data has no billed figure and no gap.
    """

    day: dt.date
    provider: str  # slug
    provider_name: str
    layers: tuple[str, ...]  # the layers present, most authoritative first
    billed_nanos: int | None  # the billing layer's sum
    computed_nanos: int | None  # our prices over the usage layer, else the telemetry layer
    computed_from: str | None  # "usage" | "telemetry"; None when neither is present
    computed_unpriced_rows: int  # rows of that layer no price list knows: the computed figure is unknown
    reported_nanos: int | None  # the telemetry layer's own cost figures
    reported_missing_rows: int  # telemetry rows that came without one
    counted_nanos: int  # what every total counts for this provider-day (the rollups)
    adjustment_nanos: int  # of which the unattributed reconciliation adjustment

    @property
    def gap_nanos(self) -> int | None:
        if self.billed_nanos is None or self.computed_nanos is None:
            return None
        return self.billed_nanos - self.computed_nanos

    @property
    def computed_note(self) -> str:
        if self.computed_from is None:
            return "no usage report or telemetry"
        if self.computed_unpriced_rows:
            return f"partly unpriced ({self.computed_unpriced_rows} rows)"
        return f"from {self.computed_from}"

    @property
    def status(self) -> str:
        gap = self.gap_nanos
        if gap is None:
            return "no billing data" if self.billed_nanos is None else self.computed_note
        if gap == 0:
            return "matches"
        return "billed above our prices" if gap > 0 else "billed below our prices"

    def as_dict(self) -> dict:
        """The CSV row: exact dollars, "unknown" where a figure is unknown (an empty cell would sum as 0)."""

        def money(nanos: int | None) -> str:
            return UNKNOWN if nanos is None else str(usd_text(nanos))

        return {
            "day": self.day.isoformat(),
            "provider": self.provider,
            "layers": " ".join(self.layers),
            "billed_usd": money(self.billed_nanos),
            "computed_usd": money(self.computed_nanos),
            "computed_from": self.computed_from or "",
            "computed_unpriced_rows": self.computed_unpriced_rows,
            "reported_usd": money(self.reported_nanos),
            "reported_missing_rows": self.reported_missing_rows,
            "gap_usd": money(self.gap_nanos),
            "status": self.status,
            "counted_usd": money(self.counted_nanos),
            "adjustment_usd": money(self.adjustment_nanos),
        }


# The CSV columns, in the order of ReconciliationRow.as_dict.
RECONCILIATION_FIELDS = (
    "day",
    "provider",
    "layers",
    "billed_usd",
    "computed_usd",
    "computed_from",
    "computed_unpriced_rows",
    "reported_usd",
    "reported_missing_rows",
    "gap_usd",
    "status",
    "counted_usd",
    "adjustment_usd",
)


def reconciliation(
    viewer: Viewer, *, start: dt.date, end: dt.date, provider: str | None = None
) -> list[ReconciliationRow]:
    """Billed vs computed vs reported per provider and organisation-local day, start..end inclusive.

    Organisation-wide (CIO/FinOps) only: 404 for anyone else. Reads the fact table for the layers and
    the rollups for what the totals count, ordered by day, then provider.
    """
    if not viewer.sees_organisation:
        raise Http404("no such page")
    facts = scope_usage(UsageFact.objects.all(), viewer).filter(day__gte=start, day__lte=end)
    rollups = scope_usage(DailyRollup.objects.all(), viewer).filter(day__gte=start, day__lte=end)
    if provider:
        facts = facts.filter(provider__slug=provider)
        rollups = rollups.filter(provider__slug=provider)
    layer_rows = (
        facts.annotate(layer=layer_expression(source_layers(viewer.organisation_id)))
        .values("day", "provider_id", "layer")
        .annotate(
            rows=Count("id"),
            cost=Sum("cost_nanos"),
            unpriced=Count("id", filter=Q(cost_nanos__isnull=True)),
            reported=Sum("reported_cost_nanos"),
            reported_rows=Count("reported_cost_nanos"),
        )
        .order_by()
    )
    units: dict[tuple[dt.date, int], dict[Layer, dict]] = {}
    for row in layer_rows:
        units.setdefault((row["day"], row["provider_id"]), {})[Layer(row["layer"])] = row
    counted = {
        (row["day"], row["provider_id"]): row
        for row in rollups.values("day", "provider_id")
        .annotate(total=Sum("cost_nanos"), adjustment=Sum("cost_nanos", filter=Q(adjustment=True)))
        .order_by()
    }
    providers = {
        pk: (slug, name)
        for pk, slug, name in Provider.objects.filter(
            pk__in={provider_id for _, provider_id in units}
        ).values_list("pk", "slug", "name")
    }
    result = [
        _reconciliation_row(day, providers[provider_id], layers, counted.get((day, provider_id), {}))
        for (day, provider_id), layers in units.items()
    ]
    result.sort(key=lambda row: (row.day, row.provider))
    return result


def _reconciliation_row(
    day: dt.date, provider: tuple[str, str], layers: dict[Layer, dict], counted: dict
) -> ReconciliationRow:
    billing = layers.get(Layer.BILLING)
    computed_layer = (
        Layer.USAGE if Layer.USAGE in layers else Layer.TELEMETRY if Layer.TELEMETRY in layers else None
    )
    computed = layers.get(computed_layer) if computed_layer else None
    unpriced = computed["unpriced"] if computed else 0
    telemetry = layers.get(Layer.TELEMETRY)
    reported = telemetry["reported"] if telemetry and telemetry["reported_rows"] else None
    return ReconciliationRow(
        day=day,
        provider=provider[0],
        provider_name=provider[1],
        layers=tuple(layer.label for layer in sorted(layers, reverse=True)),
        billed_nanos=billing["cost"] if billing else None,
        computed_nanos=(computed["cost"] or 0) if computed and not unpriced else None,
        computed_from=computed_layer.label if computed_layer else None,
        computed_unpriced_rows=unpriced,
        reported_nanos=reported,
        reported_missing_rows=telemetry["rows"] - telemetry["reported_rows"] if telemetry else 0,
        counted_nanos=counted.get("total") or 0,
        adjustment_nanos=counted.get("adjustment") or 0,
    )


def reconciliation_providers(viewer: Viewer) -> list[tuple[str, str]]:
    """(slug, name) of the providers the organisation has rollups for, for the page's filter."""
    if not viewer.sees_organisation:
        raise Http404("no such page")
    ids = scope_usage(DailyRollup.objects.all(), viewer).values("provider_id").distinct()
    return list(Provider.objects.filter(pk__in=ids).order_by("slug").values_list("slug", "name"))
