"""Anthropic Admin API cost report (`/v1/organizations/cost_report`), one page per file or a list of
pages: the invoice lines, daily x workspace x description. The amount is the cost and is never priced
again.

Money (FORMATS.md §2.2): `amount` is a decimal string in cents ("123.45" is $1.2345), read exactly.
The report carries no token counts (`token_type` only names the kind a line bills), so its rows hold
money alone. Priority Tier usage is not in this report at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from apps.ingestion.adapters import base
from apps.ingestion.adapters.anthropic_usage import (
    bucket_results,
    bucket_start_and_grain,
    model_or,
    natural_key,
    raw_result,
)
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid

# Every field that tells one line of a day from another: the workspace, the description and the
# dimensions filled when grouped by description.
KEY_FIELDS = (
    "workspace_id",
    "description",
    "cost_type",
    "model",
    "service_tier",
    "token_type",
    "context_window",
    "inference_geo",
    "speed",
)


class AnthropicCosts(base.Adapter):
    name = "anthropic_costs"
    description = "Anthropic Admin API cost report pages (amounts in cents)"
    basis = base.Basis.BILLING

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        for item in bucket_results(stream, file_name):
            if isinstance(item, RowError):
                yield item
                continue
            position, bucket, result = item
            try:
                yield _row(bucket, result, position)
            except RowInvalid as error:
                yield RowError(file_name, position, error.field, error.reason, raw_result(bucket, result))


def _placeholder_model(result: dict) -> str:
    # Web search and code execution lines name no model; keep them apart from each other by kind.
    cost_type = base.text(result.get("cost_type"))
    if cost_type:
        return f"({cost_type.replace('_', ' ')})"
    return "(not grouped by description)"


def _row(bucket: dict, result: Any, position: int) -> NormalisedRow:
    if not isinstance(result, dict):
        raise RowInvalid("(result)", f"expected an object, got {type(result).__name__}")
    ts, grain = bucket_start_and_grain(bucket)
    currency = base.text(result.get("currency"))
    if currency is not None and currency.upper() != "USD":
        raise RowInvalid("currency", f"only USD amounts can be stored, got {currency!r}")
    amount = base.cents_to_nanos(result.get("amount"), "amount")
    if amount is None:
        raise RowInvalid("amount", "is missing")
    tier = base.text(result.get("service_tier"))
    workspace = base.text(result.get("workspace_id"))
    return NormalisedRow(
        ts=ts,
        grain=grain,
        record_key=natural_key(result.get(name) for name in KEY_FIELDS),
        provider="anthropic",
        model=model_or(result.get("model"), _placeholder_model(result)),
        line=position,
        batch=tier == "batch",
        service_tier=tier,
        reported_cost_nanos=amount,
        identity={"workspace": workspace} if workspace else {},
    )
