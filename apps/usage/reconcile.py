"""Billing vs telemetry: which facts of a provider-day set its total, and which ones split it.

An organisation may load, for the same provider and days, the provider's invoice lines (billing), its usage
report (usage) and per-request gateway logs (telemetry). All of them are stored, but each dollar counts once.
The coverage unit is (organisation, organisation-local day, provider); the layers present in it are named
by the basis of each fact's source adapter.

- Its money total is the billing layer's sum if there is one, else the usage layer's computed sum, else the
  telemetry layer's: the bill stands over our prices, and provider reports over gateway logs.
- It is split by its most detailed layer (telemetry, else usage, else billing): only that layer's facts
  enter the rollups, with their tokens, attribution and cost as they are.
- What the split layer does not explain (total - split) is one unattributed adjustment row, cost only, on
  a placeholder model of the provider. It is negative when the gateway logged more than was billed, so the
  totals still equal the bill.

A unit with one layer rolls up exactly as it would without this module.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from django.db.models import Case, IntegerField, Value, When

from apps.catalog.models import AIModel
from apps.ingestion.adapters import Adapter, Basis, UnknownFormat, get_adapter
from apps.ingestion.models import DataSource

# The model an adjustment row is attached to, one per provider.
PLACEHOLDER_MODEL = "(billed, not in telemetry)"


class Layer(enum.IntEnum):
    """Ordered by authority over the total; the lowest present splits, the highest present counts."""

    TELEMETRY = 1
    USAGE = 2
    BILLING = 3

    @property
    def label(self) -> str:
        return self.name.lower()


LAYER_OF_BASIS = {Basis.TELEMETRY: Layer.TELEMETRY, Basis.USAGE: Layer.USAGE, Basis.BILLING: Layer.BILLING}


def basis_of_format(format: str) -> str:
    try:
        return get_adapter(format).basis
    except UnknownFormat:
        # A source whose adapter is gone is read as the contract's default: its facts still count.
        return Adapter.basis


def source_layers(organisation_id: int) -> dict[int, Layer]:
    """source id -> layer, for every data source of the organisation (one query)."""
    return {
        source_id: LAYER_OF_BASIS[basis_of_format(format)]
        for source_id, format in DataSource.objects.filter(organisation_id=organisation_id).values_list(
            "id", "format"
        )
    }


def layer_sql(layers: dict[int, Layer], column: str) -> tuple[str, list[int]]:
    """A portable SQL expression for a fact's layer from its source id column, and its parameters.

    Only billing and usage sources are named; every other source (telemetry, or unknown) is telemetry.
    """
    branches: list[str] = []
    params: list[int] = []
    for layer in (Layer.BILLING, Layer.USAGE):
        ids = sorted(source_id for source_id, value in layers.items() if value == layer)
        if ids:
            branches.append(f"WHEN {column} IN ({', '.join(['%s'] * len(ids))}) THEN {int(layer)}")
            params.extend(ids)
    if not branches:
        return str(int(Layer.TELEMETRY)), []
    return f"CASE {' '.join(branches)} ELSE {int(Layer.TELEMETRY)} END", params


def layer_expression(layers: dict[int, Layer]) -> Case | Value:
    """The same mapping as an ORM expression, for selectors."""
    whens = [
        When(
            source_id__in=[source_id for source_id, value in layers.items() if value == layer],
            then=int(layer),
        )
        for layer in (Layer.BILLING, Layer.USAGE)
        if layer in layers.values()
    ]
    if not whens:
        return Value(int(Layer.TELEMETRY), output_field=IntegerField())
    return Case(*whens, default=Value(int(Layer.TELEMETRY)), output_field=IntegerField())


def ensure_placeholder_models(provider_ids: Iterable[int]) -> None:
    """Create the adjustment model of each provider that does not have one yet."""
    for provider_id in sorted(set(provider_ids)):
        AIModel.objects.get_or_create(provider_id=provider_id, name=PLACEHOLDER_MODEL)
