"""Google Cloud Billing export rows for Vertex AI and the Gemini API (FORMATS.md §5.1), as JSONL (a
BigQuery export or `bq query --format=json` output) or a JSON array. The billing truth for Google.

One row per usage window (usually an hour) x SKU x project x labels. Only Vertex AI / Gemini rows are
read; other services and tax rows (no SKU, no usage; Azure's cost is pre-tax too) are skipped.

Money: `cost` is before credits, and credits are negative, so the billed amount is
`cost + sum(credits[].amount)`, divided by `currency_conversion_rate` when the account bills in
another currency (Google defines cost / rate as the amount in US dollars).

Tokens come from the SKU, one kind per SKU: "... Text Input", "... Text Output", "... Thinking Text
Output" (output that is all reasoning), "... Input Text Caching" (cache reads); storage SKUs count
token-hours, not tokens. The model is the SKU's leading words ("Gemini 2.5 Flash" -> gemini-2.5-flash).

The export has no row id. The natural key is every identifying column — window, SKU, project,
location, labels, tags, cost type, adjustment, invoice month — and `export_time` when present: Google
appends late usage of an earlier hour as new rows with a later `export_time`, which must add up, while
a re-queried window repeats rows exactly and is a duplicate. An aggregated query without `export_time`
re-pulled after the hour grew replaces its earlier version.
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
from apps.ingestion.adapters.jsonlines import iter_json_records
from apps.usage.models import Grain

VERTEX_SERVICE_ID = "C7E2-9256-1C43"
AI_SERVICE_WORDS = ("vertex ai", "gemini", "generative language")
# The first of these words in a SKU description ends its model name.
NOT_MODEL_WORDS = {
    "ga",
    "preview",
    "text",
    "input",
    "output",
    "thinking",
    "audio",
    "image",
    "video",
    "caching",
    "cached",
    "cache",
    "context",
    "batch",
    "long",
    "short",
    "tokens",
    "token",
    "characters",
    "predictions",
    "online",
    "storage",
    "multimodal",
    "tuning",
    "grounding",
}
MAX_EXPONENT = 30  # far above any real amount; keeps Decimal arithmetic from overflowing
BQ_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*(?:UTC|Z|\+00:00)?")


class VertexBilling(base.Adapter):
    name = "vertex_billing"
    description = "Google Cloud Billing export rows for Vertex AI / Gemini (JSONL or JSON)"
    basis = base.Basis.BILLING
    joinable_lines = True

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        for line, record, raw in iter_json_records(stream):
            if isinstance(record, RowError):
                yield RowError(file_name, line, record.field, record.reason, raw)
                continue
            try:
                row = _row(record, line)
            except RowInvalid as error:
                yield RowError(file_name, line, error.field, error.reason, raw)
                continue
            if row is not None:
                yield row


def _object(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RowInvalid(field, f"expected an object, got {type(value).__name__}")
    return value


def _pairs(value: Any, field: str) -> list[dict]:
    """A REPEATED {key, value, ...} column (labels, tags, credits); null is empty."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RowInvalid(field, "expected a list of objects")
    return value


def _timestamp(value: Any, field: str) -> dt.datetime:
    """BigQuery TIMESTAMP as exported: `2026-08-03 10:00:00[.ffffff] UTC`, epoch seconds (also as
    `"1.785924E9"` from tabledata.list) or ISO 8601."""
    if isinstance(value, str):
        match = BQ_TIMESTAMP.fullmatch(value.strip())
        if match:
            return base.timestamp(f"{match.group(1)}T{match.group(2)}+00:00", field)
        try:
            seconds = Decimal(value.strip())
        except InvalidOperation:
            return base.timestamp(value, field)
        if not seconds.is_finite() or (seconds and seconds.adjusted() > 11):
            raise RowInvalid(field, f"not a timestamp: {value!r}")
        value = int(seconds) if seconds == seconds.to_integral_value() else float(seconds)
    return base.timestamp(value, field)


def _grain(start: dt.datetime, end: dt.datetime | None) -> int:
    if end is None:
        return Grain.HOUR
    width = (end - start).total_seconds()
    if width <= 60:
        return Grain.MINUTE
    if width <= 3600:
        return Grain.HOUR
    return Grain.DAY


def _amount(value: Any, field: str) -> Decimal:
    """An amount exactly as written (a float by its shortest repr, a string as is)."""
    if value is None or value == "":
        raise RowInvalid(field, "is missing")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RowInvalid(field, f"expected an amount, got {value!r}")
    try:
        amount = (
            Decimal(repr(value))
            if isinstance(value, float)
            else Decimal(value.strip() if isinstance(value, str) else value)
        )
    except InvalidOperation:
        raise RowInvalid(field, f"expected an amount, got {value!r}") from None
    if not amount.is_finite():
        raise RowInvalid(field, f"expected a finite amount, got {value!r}")
    if amount and amount.adjusted() > MAX_EXPONENT:
        raise RowInvalid(field, f"{value!r} is out of range")
    return amount


def _usd_nanos(amount: Decimal, field: str) -> int:
    nanos = int((amount * base.NANOS).to_integral_value())
    if not -(2**63) <= nanos < 2**63:
        raise RowInvalid(field, f"{amount} does not fit in 64 bits of nano-dollars")
    return nanos


def sku_model(description: str) -> str:
    """The model a SKU bills: its leading words up to the first word describing the charge."""
    words = []
    for word in description.split(" - ")[0].split():
        if word.lower() in NOT_MODEL_WORDS:
            break
        words.append(word.lower())
    return "-".join(words)


def _token_kind(description: str) -> str | None:
    words = set(description.lower().replace("-", " ").split())
    if "storage" in words:
        return None  # cache storage is billed per token-hour, not per token
    if words & {"caching", "cached"}:
        return "cache_read"
    if "output" in words:
        return "reasoning" if "thinking" in words else "output"
    if "input" in words:
        return "input"
    return None


def _is_ai(service: dict, sku: dict) -> bool:
    if service.get("id") == VERTEX_SERVICE_ID:
        return True
    names = f"{base.text(service.get('description')) or ''} {base.text(sku.get('description')) or ''}"
    return any(word in names.lower() for word in AI_SERVICE_WORDS)


def _row(record: Any, line: int) -> NormalisedRow | None:
    if not isinstance(record, dict):
        raise RowInvalid("(record)", f"expected an object, got {type(record).__name__}")
    service = _object(record.get("service"), "service")
    sku = _object(record.get("sku"), "sku")
    cost_type = base.text(record.get("cost_type")) or "regular"
    if cost_type == "tax" or not _is_ai(service, sku):
        return None
    start = _timestamp(record.get("usage_start_time"), "usage_start_time")
    end_value = record.get("usage_end_time")
    end = None if end_value in (None, "") else _timestamp(end_value, "usage_end_time")
    if end is not None and end < start:
        raise RowInvalid("usage_end_time", f"{end_value!r} is before usage_start_time")
    project = _object(record.get("project"), "project")
    repeated = {
        field: _pairs(record.get(field), field) for field in ("labels", "system_labels", "tags", "credits")
    }

    net = _amount(record.get("cost"), "cost")
    for position, credit in enumerate(repeated["credits"]):
        net += _amount(credit.get("amount"), f"credits[{position}].amount")
    currency = (base.text(record.get("currency")) or "USD").upper()
    if currency != "USD":
        rate_value = record.get("currency_conversion_rate")
        rate = _amount(rate_value, "currency_conversion_rate")
        if rate <= 0:
            raise RowInvalid("currency_conversion_rate", f"expected a positive rate, got {rate_value!r}")
        net = net / rate

    description = base.text(sku.get("description")) or ""
    row = NormalisedRow(
        ts=start,
        grain=_grain(start, end),
        record_key=_record_key(record, service, sku, project, repeated, start, end, cost_type),
        provider="google",
        model=sku_model(description) or description or "(no sku)",
        line=line,
        batch="batch" in description.lower().split(),
        reported_cost_nanos=_usd_nanos(net, "cost"),
        identity=_identity(project, repeated),
    )
    usage = _object(record.get("usage"), "usage")
    unit = (base.text(usage.get("unit")) or "count").lower()
    kind = _token_kind(description)
    # Adjustments and rounding rows move money, not usage.
    if kind is not None and cost_type == "regular" and (unit == "count" or "token" in unit):
        count = base.tokens(usage.get("amount"), "usage.amount")
        if kind == "input":
            row.input_uncached_tokens = count
        elif kind == "cache_read":
            row.cache_read_tokens = count
        else:
            row.output_tokens = count
            row.reasoning_tokens = count if kind == "reasoning" else 0
    return row


def _identity(project: dict, repeated: dict[str, list[dict]]) -> dict[str, str]:
    """Project labels, then resource tags, then resource labels (the most specific wins), then the
    project id itself."""
    identity: dict[str, str] = {}
    for pairs in (_pairs(project.get("labels"), "project.labels"), repeated["tags"], repeated["labels"]):
        for pair in pairs:
            kind = (base.text(pair.get("key")) or "").lower()
            value = base.text(pair.get("value"))
            if kind and value:
                identity["tag" if kind == "task" else kind] = value
    project_id = base.text(project.get("id"))
    if project_id:
        identity["project"] = project_id
    return identity


def _record_key(
    record: dict,
    service: dict,
    sku: dict,
    project: dict,
    repeated: dict[str, list[dict]],
    start: dt.datetime,
    end: dt.datetime | None,
    cost_type: str,
) -> str:
    location = _object(record.get("location"), "location")
    resource = _object(record.get("resource"), "resource")
    adjustment = _object(record.get("adjustment_info"), "adjustment_info")
    invoice = _object(record.get("invoice"), "invoice")
    export_time = record.get("export_time")

    def pairs(field: str) -> list[list[str]]:
        return sorted(
            [str(pair.get("key")), str(pair.get("value")), str(pair.get("namespace") or "")]
            for pair in repeated[field]
        )

    identifying = [
        base.text(record.get("billing_account_id")),
        base.text(service.get("id")),
        base.text(sku.get("id")) or base.text(sku.get("description")),
        start.isoformat(),
        end.isoformat() if end else None,
        base.text(project.get("id")),
        base.text(location.get("location")) or base.text(location.get("region")),
        base.text(location.get("zone")),
        base.text(resource.get("global_name")) or base.text(resource.get("name")),
        pairs("labels"),
        pairs("system_labels"),
        pairs("tags"),
        cost_type,
        base.text(adjustment.get("id")),
        base.text(invoice.get("month")),
        export_time and _timestamp(export_time, "export_time").isoformat(),
    ]
    return hashlib.blake2b(orjson.dumps(identifying), digest_size=16).hexdigest()
