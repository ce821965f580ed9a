"""Azure Cost Management cost-details export, CSV (FORMATS.md §4.1): the billing truth for Azure OpenAI.

One row per day x meter x resource. Column names are matched without regard to case, so the EA
schema (`CostInBillingCurrency`, `BillingCurrencyCode`, `ResourceGroup`) and the MCA schema
(`costInBillingCurrency`, `costInUsd`, `billingCurrency`, `resourceGroupName`) read alike. Rows of
other services (virtual machines, storage) are skipped: only Cognitive Services / Foundry meters are
AI spend.

Money: the ledger is in USD, so `CostInUsd` is read where the export has it (MCA); otherwise
`CostInBillingCurrency`, which is accepted only when the billing currency is USD — an amount in
another currency is rejected, never stored as dollars. Both are the actual (negotiated) cost before
credits and tax, which is what the invoice lines add up to.

Tokens come from the meter: `MeterName` names model, direction (`Inp`/`Outp`, `cd` = cached input),
batch and deployment type; `Quantity` is in `UnitOfMeasure` units (`1K`, `1M`). The export has no row
id; the natural key is day + subscription + resource + meter + charge type + pricing model (+ the
reservation, benefit, allocation rule and order a row belongs to), so a month-to-date re-export
restating a day replaces it instead of adding to it.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import IO

import orjson

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.usage.models import Grain

# Our name -> the column names the EA and MCA schemas use for it (matched case-insensitively).
COLUMNS = {
    "date": ("Date",),
    "meter_name": ("MeterName",),
    "meter_id": ("MeterId",),
    "meter_category": ("MeterCategory",),
    "unit": ("UnitOfMeasure",),
    "quantity": ("Quantity",),
    "cost_usd": ("CostInUsd",),
    "cost_billing": ("CostInBillingCurrency",),
    "currency": ("BillingCurrencyCode", "BillingCurrency"),
    "subscription": ("SubscriptionId",),
    "resource_group": ("ResourceGroup", "ResourceGroupName"),
    "resource_id": ("ResourceId",),
    "resource_name": ("ResourceName",),
    "tags": ("Tags",),
    "charge_type": ("ChargeType",),
    "pricing_model": ("PricingModel",),
    "reservation": ("ReservationId",),
    "benefit": ("BenefitId",),
    "allocation_rule": ("CostAllocationRuleName",),
    "product_order": ("ProductOrderId",),
    "consumed_service": ("ConsumedService",),
}
REQUIRED = ("date", "meter_name", "quantity", "unit")
KEY_PARTS = (
    "subscription",
    "resource_id",
    "charge_type",
    "pricing_model",
    "reservation",
    "benefit",
    "allocation_rule",
    "product_order",
)
AI_METER_CATEGORIES = {"cognitive services", "foundry models", "azure ai foundry models"}
AI_CONSUMED_SERVICES = {"microsoft.cognitiveservices", "microsoft.machinelearningservices"}

# Words of a meter name that are not part of the model name.
INPUT_WORDS = {"inp", "input", "in"}
OUTPUT_WORDS = {"outp", "output", "out"}
CACHED_WORDS = {"cd", "cached", "cchd", "cache"}
DEPLOYMENT_WORDS = {"glbl", "gl", "global", "dz", "dzone", "datazone", "regnl", "rgnl", "regional"}
UNIT_WORD = re.compile(r"\d+(?:\.\d+)?[km]")  # `1M` in newer meter names
UNIT_OF_MEASURE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KkMm])?(?:\s*tokens?)?\s*", re.IGNORECASE)
TOKEN_METER = re.compile(r"\btokens?\s*$", re.IGNORECASE)
MULTIPLIERS = {None: 1, "k": 1_000, "m": 1_000_000}
MAX_EXPONENT = 30  # far above any real amount or quantity; keeps Decimal arithmetic from overflowing


class AzureCosts(base.Adapter):
    name = "azure_costs"
    description = "Azure Cost Management cost-details export (CSV, EA or MCA columns)"
    basis = base.Basis.BILLING

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        reader = csv.DictReader(base.csv_text(stream))
        columns = _columns(base.csv_header(reader, file_name), file_name)
        for start, record in base.csv_records(reader):
            try:
                if isinstance(record, RowInvalid):
                    raise record
                row = _row(record, columns, start)
            except RowInvalid as error:
                raw = "" if isinstance(record, RowInvalid) else _raw(record)
                yield RowError(file_name, start, error.field, error.reason, raw)
                continue
            if row is not None:
                yield row


def _columns(header: list[str], file_name: str) -> dict[str, str]:
    """Our name -> the header's own spelling, for every known column the file has."""
    by_lower = {name.strip().lower(): name for name in header if name}
    found = {}
    for ours, names in COLUMNS.items():
        for name in names:
            if name.lower() in by_lower:
                found[ours] = by_lower[name.lower()]
                break
    missing = [COLUMNS[ours][0] for ours in REQUIRED if ours not in found]
    if "cost_usd" not in found and "cost_billing" not in found:
        missing.append("CostInBillingCurrency or CostInUsd")
    if "cost_usd" not in found and "cost_billing" in found and "currency" not in found:
        missing.append("BillingCurrencyCode")
    if missing:
        hint = "; it looks ';'-separated, export it comma-separated" if ";" in "".join(header[:1]) else ""
        raise ValueError(
            f"{file_name}: not an Azure cost-details export, the CSV header has no "
            f"{', '.join(missing)} column{hint}"
        )
    return found


def _raw(record: dict) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(value or "" for value in record.values())
    return out.getvalue()


def _is_ai_spend(value: dict[str, str]) -> bool:
    if "meter_category" not in value and "consumed_service" not in value:
        return True  # a trimmed export: nothing says it is not AI
    return (
        value.get("meter_category", "").lower() in AI_METER_CATEGORIES
        or value.get("consumed_service", "").lower() in AI_CONSUMED_SERVICES
    )


def _date(value: str, field: str) -> dt.datetime:
    """`MM/DD/YYYY` (older EA exports) or ISO 8601, as midnight UTC of that day."""
    try:
        if re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", value):
            day = dt.datetime.strptime(value, "%m/%d/%Y").date()  # noqa: DTZ007 - a date, no time
        else:
            day = dt.date.fromisoformat(value[:10])
    except ValueError:
        raise RowInvalid(field, f"not a date: {value!r}") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _decimal(value: str, field: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise RowInvalid(field, f"expected a number, got {value!r}") from None
    if not number.is_finite():
        raise RowInvalid(field, f"expected a finite number, got {value!r}")
    if number and number.adjusted() > MAX_EXPONENT:
        raise RowInvalid(field, f"{value!r} is out of range")
    return number


def _usd_nanos(amount: Decimal, field: str) -> int:
    nanos = int((amount * base.NANOS).to_integral_value(rounding=ROUND_HALF_EVEN))
    if not -(2**63) <= nanos < 2**63:
        raise RowInvalid(field, f"{amount} does not fit in 64 bits of nano-dollars")
    return nanos


def _tags(value: str, field: str) -> dict[str, str]:
    """The resource's tags: a JSON object, in older exports without its outer braces."""
    value = value.strip()
    if not value:
        return {}
    if not value.startswith("{"):
        value = "{" + value + "}"
    try:
        tags = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise RowInvalid(field, "is not a JSON object of tags") from None
    if not isinstance(tags, dict):
        raise RowInvalid(field, f"expected an object of tags, got {type(tags).__name__}")
    identity: dict[str, str] = {}
    for key, tag_value in tags.items():
        kind = str(key).strip().lower()
        text = base.text(tag_value)
        if kind and text:
            identity["tag" if kind == "task" else kind] = text
    return identity


def read_meter(meter_name: str) -> tuple[str, str | None, bool]:
    """(model, token kind, batch) from a meter name; a meter not counting tokens keeps its whole name.

    `gpt-4o-0806-Inp-glbl Tokens` -> ("gpt-4o-0806", "input", False);
    `5.4 mini cd Inp Gl 1M Tokens` -> ("gpt-5.4-mini", "cache_read", False).
    """
    if TOKEN_METER.search(meter_name) is None:
        return meter_name.strip(), None, "batch" in meter_name.lower().split()
    words = re.split(r"[\s\-]+", TOKEN_METER.sub("", meter_name).strip())
    model: list[str] = []
    direction = None
    cached = batch = False
    for word in words:
        lower = word.lower()
        if not lower:
            continue
        if not model:
            model.append(lower)  # the first word always names the model family
        elif lower in INPUT_WORDS:
            direction = "input"
        elif lower in OUTPUT_WORDS:
            direction = "output"
        elif lower in CACHED_WORDS:
            cached = True
        elif lower == "batch":
            batch = True
        elif lower in DEPLOYMENT_WORDS or UNIT_WORD.fullmatch(lower):
            continue
        else:
            model.append(lower)
    name = "-".join(model)
    if name[:1].isdigit():
        name = f"gpt-{name}"  # newer meters drop the family name: `5.4 mini` is GPT-5.4 mini
    if direction == "output":
        return name, "output", batch
    return name, "cache_read" if cached else "input", batch  # embeddings meters name no direction


def _tokens(quantity: Decimal, unit: str, unit_field: str, quantity_field: str) -> int:
    match = UNIT_OF_MEASURE.fullmatch(unit)
    if match is None:
        raise RowInvalid(unit_field, f"unknown unit of measure {unit!r} for a token meter")
    per_unit = Decimal(match.group(1)) * MULTIPLIERS[(match.group(2) or "").lower() or None]
    count = (quantity * per_unit).to_integral_value(rounding=ROUND_HALF_EVEN)
    return base.tokens(int(count), quantity_field)


def _row(record: dict, columns: dict[str, str], line: int) -> NormalisedRow | None:
    value = {ours: (record.get(name) or "").strip() for ours, name in columns.items()}
    if not _is_ai_spend(value):
        return None
    ts = _date(base.require_text(value["date"], columns["date"]), columns["date"])
    meter_name = base.require_text(value["meter_name"], columns["meter_name"])
    quantity = _decimal(value["quantity"] or "0", columns["quantity"])

    if value.get("cost_usd"):
        cost_field = columns["cost_usd"]
        amount = value["cost_usd"]
    else:
        cost_field = columns.get("cost_billing", columns.get("cost_usd", ""))
        amount = base.require_text(value.get("cost_billing"), cost_field)
        currency = value.get("currency", "").upper()
        if currency != "USD":
            raise RowInvalid(
                columns.get("currency", COLUMNS["currency"][0]),
                f"the cost is in {currency or 'an unnamed currency'}, not USD; export with CostInUsd",
            )
    cost_nanos = _usd_nanos(_decimal(amount, cost_field), cost_field)

    model, kind, batch = read_meter(meter_name)
    row = NormalisedRow(
        ts=ts,
        grain=Grain.DAY,
        record_key=_record_key(value, ts),
        provider="azure",
        model=model or meter_name,
        line=line,
        batch=batch,
        reported_cost_nanos=cost_nanos,
    )
    refund = value.get("charge_type", "").lower() == "refund"
    if kind is not None and not (refund and quantity < 0):  # a refund returns money, not usage
        if quantity < 0:
            raise RowInvalid(columns["quantity"], f"token quantity is negative ({quantity})")
        count = _tokens(quantity, value["unit"], columns["unit"], columns["quantity"])
        if kind == "output":
            row.output_tokens = count
        elif kind == "cache_read":
            row.cache_read_tokens = count
        else:
            row.input_uncached_tokens = count

    identity = _tags(value.get("tags", ""), columns.get("tags", "Tags"))
    resource = value.get("resource_name") or value.get("resource_id", "").rsplit("/", 1)[-1]
    for kind_name, text in (
        ("subscription", value.get("subscription")),
        ("resource_group", value.get("resource_group")),
        ("resource", resource),
    ):
        if text:
            identity[kind_name] = text
    row.identity = identity
    return row


def _record_key(value: dict[str, str], ts: dt.datetime) -> str:
    meter = value.get("meter_id") or value["meter_name"]
    # Exports differ in the case of resource ids and in "On Demand" vs "OnDemand"; neither is content.
    parts = [ts.date().isoformat(), meter.lower()] + [
        value.get(part, "").lower().replace(" ", "") for part in KEY_PARTS
    ]
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()
