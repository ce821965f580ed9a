"""OpenAI Admin API Costs pages (`/v1/organization/costs`), one page per file or a list of pages: the
invoice lines, daily x project x line item x API key. The amount is the cost and is never priced again.

Money (FORMATS.md §1.3): `amount.value` is in dollars, a JSON float or (seen live) a string with up to
~39 decimals; both are read exactly. `line_item` is undocumented text such as
"gpt-4o-2024-08-06, cached input", optionally with a "priority | " prefix or a ", long context" suffix.
The model and the token kind are parsed out where it names them; the whole text stays in the key. For
a token line item `quantity` is the token count, kept to inform (the amount is what counts).

Buckets are one UTC day, but the first bucket of an export starts at the requested start time, not at
midnight. Every bucket is stored under its day's midnight, so a partial first day and a later export's
full day are the same bucket: the larger version stands, and nothing is counted twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import IO, Any

import orjson

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.usage.models import Grain

COSTS_RESULT = "organization.costs.result"
KEY_FIELDS = ("project_id", "line_item", "api_key_id")
DAY_SECONDS = 86_400
MAX_MODEL_LENGTH = 200  # the catalog's column

# The token kind a line item bills, as its text names it [3rd-party vocabulary: FORMATS.md §1.3].
TOKEN_KINDS = {
    "input": "input_uncached_tokens",  # "cached input" is its own line, so "input" is the uncached part
    "cached input": "cache_read_tokens",
    "cache writes": "cache_write_5m_tokens",
    "cache write": "cache_write_5m_tokens",
    "output": "output_tokens",
}


@dataclass(frozen=True, slots=True)
class LineItem:
    model: str | None  # None when the line is not about one model (e.g. "web search tool calls")
    kind: str | None  # "input", "cached input", ... lower case, as written
    tier: str | None  # the "priority | " prefix, lower case


def parse_line_item(text: str) -> LineItem:
    """Best effort: '[tier | ]<model>, <kind>[, long context]'; anything else names no model."""
    tier = None
    if " | " in text:
        prefix, text = text.split(" | ", 1)
        tier = prefix.strip().lower() or None
    parts = [part.strip() for part in text.split(",")]
    if len(parts) < 2 or not parts[0] or " " in parts[0]:  # model ids have no spaces; prose does
        return LineItem(None, None, tier)
    return LineItem(parts[0], parts[1].lower(), tier)


def _key(result: dict) -> str:
    """A compact, stable key over the group fields (absent and null are the same)."""
    return hashlib.blake2b(
        orjson.dumps([result.get(name) for name in KEY_FIELDS]), digest_size=16
    ).hexdigest()


class OpenAICosts(base.Adapter):
    name = "openai_costs"
    description = "OpenAI Admin API cost pages (daily invoice lines)"
    basis = base.Basis.BILLING

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        try:
            document = orjson.loads(stream.read())
        except orjson.JSONDecodeError as error:
            yield RowError(file_name, 1, "(document)", f"invalid JSON: {error}", "")
            return
        pages = document if isinstance(document, list) else [document]
        position = 0
        for page in pages:
            if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                position += 1
                yield RowError(file_name, position, "data", "expected a costs page with a data list", "")
                continue
            for bucket in page["data"]:
                results = bucket.get("results") if isinstance(bucket, dict) else None
                if not isinstance(results, list):
                    position += 1
                    raw = orjson.dumps(bucket).decode()
                    yield RowError(
                        file_name, position, "results", "expected a bucket with a results list", raw
                    )
                    continue
                for result in results:
                    position += 1
                    try:
                        yield _row(bucket, result, position)
                    except RowInvalid as error:
                        bounds = {name: bucket.get(name) for name in ("start_time", "end_time")}
                        raw = orjson.dumps({"bucket": bounds, "result": result}).decode()
                        yield RowError(file_name, position, error.field, error.reason, raw)


def _day(bucket: dict) -> dt.datetime:
    start = bucket.get("start_time")
    end = bucket.get("end_time")
    if not isinstance(start, int) or isinstance(start, bool):
        raise RowInvalid("start_time", f"expected unix seconds, got {start!r}")
    if not isinstance(end, int) or isinstance(end, bool) or end <= start:
        raise RowInvalid("end_time", f"expected unix seconds after start_time, got {end!r}")
    midnight = start - start % DAY_SECONDS
    if end > midnight + DAY_SECONDS:
        raise RowInvalid("end_time", f"the bucket {start}-{end} is not within one UTC day")
    return base.timestamp(midnight, "start_time")


def _dollars(amount: Any) -> int:
    if not isinstance(amount, dict):
        raise RowInvalid("amount", "is missing" if amount is None else "expected an object")
    currency = base.text(amount.get("currency"))
    if currency is not None and currency.lower() != "usd":
        raise RowInvalid("amount.currency", f"only USD amounts can be stored, got {currency!r}")
    value = amount.get("value")
    try:
        nanos = base.usd_to_nanos(value, "amount.value")
    except ArithmeticError:  # an exponent beyond what a decimal holds
        nanos = 2**63
    if nanos is None:
        raise RowInvalid("amount.value", "is missing")
    if not -(2**63) <= nanos < 2**63:
        raise RowInvalid("amount.value", f"{value!r} dollars does not fit in 64 bits of nano-dollars")
    return nanos


def _quantity_tokens(value: object) -> int:
    """The tokens a token line item bills; 0 when the quantity is not a whole number of tokens."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RowInvalid("quantity", f"expected a number, got {value!r}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise RowInvalid("quantity", f"expected a number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise RowInvalid("quantity", f"expected a non-negative number, got {value!r}")
    if number != number.to_integral_value():
        # Some line items count in other units (an SDK once listed "1000_tokens"); the amount stands
        # without a token count rather than with a wrong one.
        return 0
    return base.tokens(int(number), "quantity")


def _row(bucket: dict, result: Any, position: int) -> NormalisedRow:
    if not isinstance(result, dict):
        raise RowInvalid("(result)", f"expected an object, got {type(result).__name__}")
    kind = result.get("object")
    if kind != COSTS_RESULT:
        raise RowInvalid("object", f"unsupported result object {kind!r} (expected {COSTS_RESULT})")
    ts = _day(bucket)
    cost = _dollars(result.get("amount"))
    line_item = base.text(result.get("line_item"))
    item = parse_line_item(line_item) if line_item else LineItem(None, None, None)
    if item.model:
        model = item.model
    else:
        model = f"({line_item})" if line_item else "(not grouped by line item)"
    if len(model) > MAX_MODEL_LENGTH:
        raise RowInvalid("line_item", f"longer than {MAX_MODEL_LENGTH} characters")
    counts = {}
    token_column = TOKEN_KINDS.get(item.kind or "") if item.model else None
    if token_column:
        counts[token_column] = _quantity_tokens(result.get("quantity"))
    identity = {
        "project": base.text(result.get("project_id")),
        "api_key": base.text(result.get("api_key_id")),
        # Undocumented extras seen in live responses [3rd-party]; used when present.
        "user": base.text(result.get("user_id")),
        "email": base.text(result.get("user_email")),
    }
    return NormalisedRow(
        ts=ts,
        grain=Grain.DAY,
        record_key=_key(result),
        provider="openai",
        model=model,
        line=position,
        batch=item.tier == "batch",
        service_tier=item.tier,
        reported_cost_nanos=cost,
        identity={name: value for name, value in identity.items() if value},
        **counts,
    )
