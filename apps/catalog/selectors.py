"""Reads for the prices pages: overrides, mappings, re-pricing runs and the unpriced-models queue.

Organisation-wide (CIO/FinOps) only: everyone else gets 404.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Max, Min, Q, Sum
from django.http import Http404

from apps.accounts.scoping import Viewer, scope_usage
from apps.catalog.models import AIModel, ModelMapping, PriceOverride, RepricingRun
from apps.usage.models import DailyRollup, UsageFact
from apps.usage.reconcile import Layer, source_layers


def _require_organisation_wide(viewer: Viewer) -> None:
    if not viewer.sees_organisation:
        raise Http404("no such page")


@dataclass(frozen=True, slots=True)
class UnpricedModel:
    model_id: int
    provider: str
    model: str
    rows: int
    tokens: int  # input (all kinds) + output
    reported_nanos: int  # what the sources reported for these rows (not counted anywhere)
    first_seen: dt.datetime
    last_seen: dt.datetime


def unpriced_models(viewer: Viewer) -> list[UnpricedModel]:
    """Models with rows no price knows (billed rows excluded: an invoice line is its own price), most rows first."""
    _require_organisation_wide(viewer)
    billing = [
        source for source, layer in source_layers(viewer.organisation_id).items() if layer == Layer.BILLING
    ]
    rows = (
        scope_usage(UsageFact.objects.all(), viewer)
        .filter(cost_nanos__isnull=True)
        .exclude(source_id__in=billing)
        .values("model_id")
        .annotate(
            rows=Count("id"),
            input_uncached=Sum("input_uncached_tokens"),
            cache_read=Sum("cache_read_tokens"),
            cache_write_5m=Sum("cache_write_5m_tokens"),
            cache_write_1h=Sum("cache_write_1h_tokens"),
            output=Sum("output_tokens"),
            reported=Sum("reported_cost_nanos"),
            first=Min("ts"),
            last=Max("ts"),
        )
        .order_by()
    )
    rows = list(rows)
    names = {
        pk: (provider, name)
        for pk, provider, name in AIModel.objects.filter(
            pk__in=[row["model_id"] for row in rows]
        ).values_list("pk", "provider__slug", "name")
    }
    result = [
        UnpricedModel(
            model_id=row["model_id"],
            provider=names.get(row["model_id"], ("?", "?"))[0],
            model=names.get(row["model_id"], ("?", "?"))[1],
            rows=row["rows"],
            tokens=sum(
                row[key] or 0
                for key in ("input_uncached", "cache_read", "cache_write_5m", "cache_write_1h", "output")
            ),
            reported_nanos=row["reported"] or 0,
            first_seen=row["first"],
            last_seen=row["last"],
        )
        for row in rows
    ]
    result.sort(key=lambda item: (-item.rows, item.provider, item.model))
    return result


def unpriced_model_get(viewer: Viewer, *, model_id: int) -> UnpricedModel:
    for item in unpriced_models(viewer):
        if item.model_id == model_id:
            return item
    raise Http404("no such unpriced model")


def overrides(viewer: Viewer) -> list[PriceOverride]:
    _require_organisation_wide(viewer)
    return list(
        PriceOverride.objects.filter(organisation_id=viewer.organisation_id).select_related(
            "provider", "model"
        )
    )


def override_get(viewer: Viewer, *, override_id: int) -> PriceOverride:
    _require_organisation_wide(viewer)
    override = (
        PriceOverride.objects.filter(organisation_id=viewer.organisation_id, pk=override_id)
        .select_related("provider", "model")
        .first()
    )
    if override is None:
        raise Http404("no such override")
    return override


def mappings(viewer: Viewer) -> list[ModelMapping]:
    _require_organisation_wide(viewer)
    return list(ModelMapping.objects.filter(organisation_id=viewer.organisation_id))


def repricing_runs(viewer: Viewer, *, limit: int = 20) -> list[RepricingRun]:
    _require_organisation_wide(viewer)
    return list(RepricingRun.objects.filter(organisation_id=viewer.organisation_id)[:limit])


def known_models(viewer: Viewer) -> list[tuple[int, str, str]]:
    """(id, provider slug, name) of the models the organisation's facts use, for the override form."""
    _require_organisation_wide(viewer)
    used = scope_usage(DailyRollup.objects.all(), viewer).values("model_id").distinct()
    return list(
        AIModel.objects.filter(pk__in=used)
        .filter(~Q(name__startswith="("))  # reconciliation placeholders are not models
        .order_by("provider__slug", "name")
        .values_list("pk", "provider__slug", "name")
    )
