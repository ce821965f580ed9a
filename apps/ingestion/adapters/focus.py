"""FinOps FOCUS 1.2/1.3 cost-and-usage CSV (FORMATS.md §9): one charge row per file row.

Basis BILLING: the row's amount is its cost and is never re-priced. The amount read is `EffectiveCost`,
not `BilledCost`. Both are mandatory FOCUS columns and are equal for pay-as-you-go token usage (as in
every row of the shared sample), but they part ways for commitments (provisioned throughput,
prepaid plans): BilledCost puts the whole purchase on the day it was invoiced with no model, team or
usage behind it and shows the usage it covers at $0, while EffectiveCost spreads the purchase over
that usage and FOCUS requires it to be 0 on the purchase row itself, so summing it never counts a
purchase twice. For a ledger that attributes spend to teams and models, EffectiveCost is the figure
that lands on the usage that caused it; over a commitment's term both sum to the same amount.

Tokens come from `ConsumedQuantity` when `ConsumedUnit` is tokens ("Tokens", "1K Tokens", ...), and
their kind from `SkuPriceDetails` (`x_TokenType`, the 1.4 drafts' `TokenType` or `TokenDirection` +
`TokenCacheAction`) or, failing that, from the words of `SkuMeter`. A charge whose token kind cannot
be told keeps its cost and counts no tokens.

FOCUS defines no row id, so the natural key is a hash of the columns that identify a charge: billing
account, sub account, charge period, category, class, description, service, resource, region, SKU,
SKU price, meter, pricing category, commitment and tags. Two rows of one file with the same key but
different content cannot both be kept under one key; the later one is rejected, naming the first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import IO, Any

import orjson

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.ingestion.adapters.csv_generic import CsvReader
from apps.usage.models import Grain

REQUIRED = ("ChargePeriodStart", "ChargePeriodEnd", "EffectiveCost", "BillingCurrency")
KEY_COLUMNS = (
    "BillingAccountId",
    "SubAccountId",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ServiceName",
    "ResourceId",
    "RegionId",
    "SkuId",
    "SkuPriceId",
    "SkuMeter",
    "PricingCategory",
    "CommitmentDiscountId",
)
PROVIDER_COLUMNS = ("ServiceProviderName", "ProviderName", "HostProviderName", "InvoiceIssuerName")
MODEL_KEYS = ("x_ModelId", "ModelId", "x_Model", "Model")
# token kind -> the NormalisedRow fields it counts in (reasoning is a part of output)
_KIND_FIELDS = {
    "input": ("input_uncached_tokens",),
    "cache_read": ("cache_read_tokens",),
    "cache_write_5m": ("cache_write_5m_tokens",),
    "cache_write_1h": ("cache_write_1h_tokens",),
    "output": ("output_tokens",),
    "reasoning": ("output_tokens", "reasoning_tokens"),
}
_TOKEN_UNIT = re.compile(r"(?:(\d+)\s*([km]?)\s*)?tokens?", re.IGNORECASE)
_UNIT_SCALE = {"": 1, "k": 1_000, "m": 1_000_000}
# Tag keys (lower case, without a "user:" prefix) -> identity kinds the attribution resolver knows.
_TAG_KINDS = {
    "team": "gateway_team",
    "team_name": "gateway_team",
    "user": "user",
    "email": "user",
    "owner": "user",
    "task": "tag",
    "use_case": "tag",
    "usecase": "tag",
    "project": "project",
}


class Focus(base.Adapter):
    name = "focus"
    description = "FinOps FOCUS 1.2/1.3 cost and usage CSV (EffectiveCost is the cost)"
    basis = base.Basis.BILLING

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        reader = CsvReader(stream, file_name)
        positions = {name.strip(): position for position, name in enumerate(reader.header)}
        missing = [name for name in REQUIRED if name not in positions]
        if missing:
            raise ValueError(
                f"{file_name}: line 1 (header): missing FOCUS columns {', '.join(missing)}"
                f" (got {', '.join(reader.header) or 'no header'})"
            )
        # natural key -> (first line, content digest), to catch two different charges under one key.
        seen: dict[bytes, tuple[int, bytes]] = {}
        for line, values in reader.rows():
            if isinstance(values, RowError):
                yield values
                continue
            record = {name: values[position].strip() for name, position in positions.items()}
            try:
                row = _row(record, line)
                content = hashlib.blake2b("\x1f".join(values).encode(), digest_size=8).digest()
                first_line, first_content = seen.setdefault(row.record_key.encode(), (line, content))
                if first_content != content:
                    raise RowInvalid(
                        "(natural key)",
                        f"same charge as line {first_line} ({', '.join(KEY_COLUMNS)}, ChargePeriodStart/End"
                        " and Tags are equal) but a different amount or quantity",
                    )
                yield row
            except RowInvalid as error:
                yield RowError(file_name, line, error.field, error.reason, reader.raw(values))


def _decimal(value: str, field: str) -> Decimal | None:
    if not value:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise RowInvalid(field, f"expected a decimal number, got {value!r}") from None
    if not number.is_finite():
        raise RowInvalid(field, f"expected a finite number, got {value!r}")
    return number


def _json_object(value: str, field: str) -> dict[str, Any]:
    if not value:
        return {}
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise RowInvalid(field, "is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise RowInvalid(field, f"expected a JSON object, got {type(parsed).__name__}")
    return parsed


def _grain(start: dt.datetime, end: dt.datetime) -> int:
    seconds = (end - start).total_seconds()
    if seconds <= 60:
        return Grain.MINUTE
    if seconds <= 3600:
        return Grain.HOUR
    return Grain.DAY  # days, and monthly charges (purchases, tax) that belong to no single day


def _first(details: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = base.text(details.get(key))
        if value:
            return value
    return ""


def _token_kind(details: dict[str, Any], meter: str) -> str | None:
    """input / cache_read / cache_write_5m / cache_write_1h / output / reasoning, or None if unknown."""
    ttl = _first(details, ("x_CacheTtl", "CacheTtl")).lower()
    token_type = _first(details, ("x_TokenType", "TokenType")).lower().replace("_", "").replace(" ", "")
    if not token_type:
        direction = _first(details, ("x_TokenDirection", "TokenDirection")).lower()
        cache_action = _first(details, ("x_TokenCacheAction", "TokenCacheAction")).lower()
        if direction == "output":
            token_type = "output"
        elif direction == "input":
            token_type = {"read": "cacheread", "write": "cachewrite"}.get(cache_action, "input")
    if not token_type:
        words = meter.lower()
        ttl = ttl or ("1h" if "1h" in words else "")
        if "cache read" in words or "cached" in words:
            token_type = "cacheread"
        elif "cache write" in words or "cache creation" in words:
            token_type = "cachewrite"
        elif "reasoning" in words or "thinking" in words:
            token_type = "reasoning"
        elif "output" in words or "completion" in words:
            token_type = "output"
        elif "input" in words or "prompt" in words:
            token_type = "input"
    if token_type == "cachewrite":
        return "cache_write_1h" if ttl == "1h" else "cache_write_5m"
    return {
        "input": "input",
        "cacheread": "cache_read",
        "output": "output",
        "reasoning": "reasoning",
        "thinking": "reasoning",
    }.get(token_type)


def _token_count(record: dict[str, str]) -> int | None:
    """ConsumedQuantity in tokens when ConsumedUnit is a token unit; None for anything else."""
    unit = _TOKEN_UNIT.fullmatch(record.get("ConsumedUnit", ""))
    quantity = _decimal(record.get("ConsumedQuantity", ""), "ConsumedQuantity")
    if unit is None or quantity is None:
        return None
    scale = int(unit.group(1) or 1) * _UNIT_SCALE[(unit.group(2) or "").lower()]
    count = quantity * scale
    if count != count.to_integral_value():
        raise RowInvalid(
            "ConsumedQuantity", f"{quantity} {record['ConsumedUnit']} is not a whole number of tokens"
        )
    return base.tokens(int(count), "ConsumedQuantity")


def _identity(record: dict[str, str], tags: dict[str, Any]) -> dict[str, str]:
    identity: dict[str, str] = {}
    for key, value in tags.items():
        name = key.strip().lower().removeprefix("user:")
        kind = _TAG_KINDS.get(name)
        text = base.text(value)
        if kind and text and kind not in identity:
            identity[kind] = text
    if record.get("SubAccountId"):
        identity["project"] = record["SubAccountId"]
    if record.get("ResourceId"):
        identity["resource"] = record["ResourceId"]
    return identity


def _record_key(record: dict[str, str], tags: dict[str, Any], start: dt.datetime, end: dt.datetime) -> str:
    parts = [start.isoformat(), end.isoformat(), *(record.get(name, "") for name in KEY_COLUMNS)]
    parts.append(orjson.dumps(tags, option=orjson.OPT_SORT_KEYS).decode())
    return "focus-" + hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def _row(record: dict[str, str], line: int) -> NormalisedRow:
    currency = record["BillingCurrency"].upper()
    if currency != "USD":
        raise RowInvalid(
            "BillingCurrency", f"only USD amounts are supported, got {record['BillingCurrency']!r}"
        )
    start = base.timestamp(record["ChargePeriodStart"], "ChargePeriodStart")
    end = base.timestamp(record["ChargePeriodEnd"], "ChargePeriodEnd")
    if end <= start:
        raise RowInvalid("ChargePeriodEnd", f"{record['ChargePeriodEnd']} is not after ChargePeriodStart")
    cost = _decimal(record["EffectiveCost"], "EffectiveCost")
    if cost is None:
        raise RowInvalid("EffectiveCost", "is missing")
    details = _json_object(record.get("SkuPriceDetails", ""), "SkuPriceDetails")
    tags = _json_object(record.get("Tags", ""), "Tags")
    model = (
        _first(details, MODEL_KEYS)
        or record.get("ChargeDescription")
        or record.get("SkuId")
        or record.get("ServiceName")
    )
    if not model:
        raise RowInvalid(
            "SkuPriceDetails", "names no model, and ChargeDescription, SkuId and ServiceName are empty"
        )
    tier = _first(details, ("x_ServiceTier", "ServiceTier")).lower()
    row = NormalisedRow(
        ts=start,
        grain=_grain(start, end),
        record_key=_record_key(record, tags, start, end),
        provider=next((record[name] for name in PROVIDER_COLUMNS if record.get(name)), ""),
        model=model,
        line=line,
        batch=tier == "batch",
        service_tier=tier if tier and tier != "batch" else None,
        reported_cost_nanos=base.usd_to_nanos(cost, "EffectiveCost"),
        identity=_identity(record, tags),
    )
    # Credits, refunds and corrections move money, not tokens: counting their quantities would add
    # tokens twice (or negative ones); their cost still counts.
    is_usage = (
        record.get("ChargeCategory", "Usage") in ("Usage", "") and record.get("ChargeClass") != "Correction"
    )
    count = _token_count(record) if is_usage else None
    kind = _token_kind(details, record.get("SkuMeter", "")) if count else None
    for field in _KIND_FIELDS.get(kind or "", ()):
        setattr(row, field, count)
    return row
