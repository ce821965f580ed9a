"""FOCUS 1.3 export of allocated cost (FORMATS.md §9): one charge row per daily rollup row.

A rollup row is one organisation-local day x team x person x task x provider x model, so the export is the
allocation itself; its costs sum, to the nano-dollar, to what `manage.py spend`, the API and the dashboards
show (all read the same rollups). FOCUS has no user or task columns: team, person and task go in `Tags`
and in `x_` columns. Text cells are made formula-safe (TESTPLAN I1); money and quantities stay numbers.

Cost columns: BilledCost = EffectiveCost = ContractedCost = the net cost SpendWatch counts (after the
organisation's own price terms); ListCost = the same usage at list prices. The buckets of the net cost
(billed / computed / estimated) and the unpriced rows are `x_` columns. Rows whose cost is unknown
(unpriced) carry 0 cost and say so in `x_UnpricedRows`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
from django.http import Http404

from apps.accounts.scoping import Viewer, scope_usage
from apps.catalog.normalise import provider_display_name
from apps.ingestion.csvsafe import safe_cell
from apps.org.models import Organisation
from apps.usage.models import DailyRollup
from apps.usage.money import usd_text

FOCUS_COLUMNS = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingAccountType",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractApplied",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "HostProviderName",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceProviderName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
)
X_COLUMNS = (
    "x_Team",
    "x_TeamName",
    "x_Person",
    "x_PersonName",
    "x_Task",
    "x_TaskName",
    "x_Model",
    "x_CostBilled",
    "x_CostComputed",
    "x_CostEstimated",
    "x_UnpricedRows",
    "x_UnpricedReportedCost",
    "x_Requests",
    "x_Adjustment",
)
COLUMNS = FOCUS_COLUMNS + X_COLUMNS

# Who hosts the model (FOCUS 1.3 HostProviderName) and the service's name, per provider slug.
SERVICE_NAMES = {
    "openai": "OpenAI API",
    "anthropic": "Claude API",
    "google": "Vertex AI",
    "aws": "Amazon Bedrock",
    "azure": "Azure OpenAI",
    "openrouter": "OpenRouter",
}
TEXT = frozenset(
    {
        "BillingAccountId",
        "BillingAccountName",
        "ChargeDescription",
        "HostProviderName",
        "InvoiceIssuerName",
        "ProviderName",
        "PublisherName",
        "ResourceId",
        "ResourceName",
        "ServiceName",
        "ServiceProviderName",
        "SkuId",
        "SkuPriceId",
        "Tags",
        "SkuPriceDetails",
        "x_Team",
        "x_TeamName",
        "x_Person",
        "x_PersonName",
        "x_Task",
        "x_TaskName",
        "x_Model",
    }
)
_MILLION = Decimal(1_000_000)


def _utc(day: dt.date, zone: ZoneInfo) -> str:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _month(day: dt.date) -> tuple[dt.date, dt.date]:
    start = day.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def focus_rows(viewer: Viewer, *, start: dt.date, end: dt.date) -> Iterator[dict]:
    """One FOCUS row per rollup row of organisation-local days start..end (inclusive). CIO/FinOps only."""
    if not viewer.sees_organisation:
        raise Http404("no such page")
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    zone = ZoneInfo(organisation.time_zone)
    rows = (
        scope_usage(DailyRollup.objects.all(), viewer)
        .filter(day__gte=start, day__lte=end)
        .order_by("day", "provider__slug", "model__name", "team__slug", "person__email", "task__key", "pk")
        .values_list(
            "day",
            "team__slug",
            "team__name",
            "person__email",
            "person__name",
            "task__key",
            "task__name",
            "provider__slug",
            "provider__name",
            "model__name",
            "fact_rows",
            "unpriced_rows",
            "requests",
            "input_uncached_tokens",
            "cache_read_tokens",
            "cache_write_5m_tokens",
            "cache_write_1h_tokens",
            "output_tokens",
            "cost_nanos",
            "list_cost_nanos",
            "billed_cost_nanos",
            "estimated_cost_nanos",
            "unpriced_reported_nanos",
            "adjustment",
        )
    )
    for (
        day, team, team_name, person, person_name, task, task_name, provider, provider_name, model,
        _fact_rows, unpriced, requests, uncached, cache_read, write_5m, write_1h, output,
        cost, list_cost, billed, estimated, unpriced_reported, adjustment,
    ) in rows.iterator(chunk_size=5_000):  # fmt: skip
        consumed = uncached + cache_read + write_5m + write_1h + output
        period_start, period_end = _month(day)
        service = SERVICE_NAMES.get(provider, f"{provider_display_name(provider)} API")
        tags = {key: value for key, value in (("team", team), ("person", person), ("task", task)) if value}
        net = usd_text(cost)
        description = (
            f"{provider_name}: billed total not explained by per-request logs"
            if adjustment
            else f"{provider_name} {model} usage"
        )
        yield {
            "BilledCost": net,
            "BillingAccountId": organisation.slug,
            "BillingAccountName": organisation.name,
            "BillingAccountType": "Organization",
            "BillingCurrency": "USD",
            "BillingPeriodEnd": _utc(period_end, zone),
            "BillingPeriodStart": _utc(period_start, zone),
            "ChargeCategory": "Adjustment" if adjustment else "Usage",
            "ChargeDescription": description,
            "ChargeFrequency": "Usage-Based",
            "ChargePeriodEnd": _utc(day + dt.timedelta(days=1), zone),
            "ChargePeriodStart": _utc(day, zone),
            "ConsumedQuantity": consumed,
            "ConsumedUnit": "Tokens",
            "ContractedCost": net,
            "EffectiveCost": net,
            "HostProviderName": provider_name,
            "InvoiceIssuerName": provider_name,
            "ListCost": usd_text(list_cost),
            "PricingCategory": "Standard",
            "PricingCurrency": "USD",
            "PricingCurrencyEffectiveCost": net,
            "PricingQuantity": str(Decimal(consumed) / _MILLION),
            "PricingUnit": "1000000 Tokens",
            "ProviderName": provider_name,
            "PublisherName": provider_name,
            "ServiceCategory": "AI and Machine Learning",
            "ServiceName": service,
            "ServiceProviderName": provider_name,
            "ServiceSubcategory": "Generative AI",
            "SkuId": f"{provider}/{model}",
            "SkuMeter": "Tokens",
            "SkuPriceDetails": orjson.dumps({"x_ModelId": model}).decode(),
            "Tags": orjson.dumps(tags).decode(),
            "x_Team": team or "",
            "x_TeamName": team_name or "",
            "x_Person": person or "",
            "x_PersonName": person_name or "",
            "x_Task": task or "",
            "x_TaskName": task_name or "",
            "x_Model": model,
            "x_CostBilled": usd_text(billed),
            "x_CostComputed": usd_text(cost - billed - estimated),
            "x_CostEstimated": usd_text(estimated),
            "x_UnpricedRows": unpriced,
            "x_UnpricedReportedCost": usd_text(unpriced_reported),
            "x_Requests": "" if requests is None else requests,
            "x_Adjustment": "true" if adjustment else "false",
        }


def write_focus_csv(stream, rows: Iterator[dict]) -> int:
    """Write the header and rows (text cells formula-safe); returns the rows written."""
    writer = csv.DictWriter(stream, fieldnames=COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({key: safe_cell(value) if key in TEXT else value for key, value in row.items()})
        count += 1
    return count


def focus_csv_chunks(rows: Iterator[dict], *, every: int = 1_000) -> Iterator[str]:
    """The same CSV as text chunks, for a streaming download."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    for count, row in enumerate(rows, start=1):
        writer.writerow({key: safe_cell(value) if key in TEXT else value for key, value in row.items()})
        if count % every == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
