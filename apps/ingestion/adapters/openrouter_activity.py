"""OpenRouter activity (`GET /api/v1/activity`, FORMATS.md §7.1): `{"data": [ActivityItem]}`, one row
per UTC day x endpoint (x workspace when pulled with `group_by=workspace`).

Basis BILLING: `usage` is not a token report to be priced but the dollars OpenRouter took from the
credit balance for that day and endpoint, which is what was spent. Pricing the tokens ourselves could
only disagree with it: the activity carries no cache split (cached prompt tokens would be charged at
the full input rate) and OpenRouter charges each endpoint's own price. For BYOK traffic `usage` is
only OpenRouter's fee; `byok_usage_inference` is what the provider charged on the customer's own key,
which is on that provider's invoice, not OpenRouter's. It is left out: billing rows of one provider
and day are summed across sources, so counting it here too would count it twice once that
provider's cost export is loaded (which is where it belongs).

Natural key: date + endpoint_id (+ workspace_id). Each daily pull repeats the last 30 completed days,
so a re-pulled day replaces the stored one. A pull filtered by `api_key_hash` carries no key in its
rows: give each filtered key its own data source, or two keys' rows for one endpoint would collide.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import IO, Any

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.ingestion.adapters.jsonlines import iter_json_records
from apps.ingestion.adapters.openrouter_generations import endpoint_provider_and_model
from apps.usage.models import Grain


class OpenRouterActivity(base.Adapter):
    name = "openrouter_activity"
    description = "OpenRouter activity export (/api/v1/activity, day x endpoint, amounts charged)"
    basis = base.Basis.BILLING
    joinable_lines = True
    envelope_key = "data"

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        for line, record, raw in iter_json_records(stream, envelope_key=self.envelope_key):
            if isinstance(record, RowError):
                yield RowError(file_name, line, record.field, record.reason, raw)
                continue
            try:
                yield _row(record, line)
            except RowInvalid as error:
                yield RowError(file_name, line, error.field, error.reason, raw)


def _day(value: Any) -> dt.datetime:
    text = base.require_text(value, "date")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise RowInvalid("date", f"expected YYYY-MM-DD, got {value!r}") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _row(item: Any, line: int) -> NormalisedRow:
    if not isinstance(item, dict):
        raise RowInvalid("(record)", f"expected an object, got {type(item).__name__}")
    ts = _day(item.get("date"))
    endpoint = base.require_text(item.get("endpoint_id"), "endpoint_id")
    raw_model = base.text(item.get("model_permaslug")) or base.require_text(item.get("model"), "model")
    charged = base.usd_to_nanos(item.get("usage"), "usage")
    if charged is None:
        raise RowInvalid("usage", "is missing (the amount charged is this row's cost)")
    completion = base.tokens(item.get("completion_tokens"), "completion_tokens")
    reasoning = base.tokens(item.get("reasoning_tokens"), "reasoning_tokens")
    if reasoning > completion:
        raise RowInvalid("reasoning_tokens", f"{reasoning} is more than completion_tokens ({completion})")
    workspace = base.text(item.get("workspace_id"))
    provider, model = endpoint_provider_and_model(base.text(item.get("provider_name")), raw_model)
    key = f"{ts.date().isoformat()}/{endpoint}" + (f"/{workspace}" if workspace else "")
    return NormalisedRow(
        ts=ts,
        grain=Grain.DAY,
        record_key=key,
        provider=provider,
        model=model,
        line=line,
        # No cache split is reported: every prompt token is counted as uncached input.
        input_uncached_tokens=base.tokens(item.get("prompt_tokens"), "prompt_tokens"),
        output_tokens=completion,
        reasoning_tokens=reasoning,
        requests=base.optional_count(item.get("requests"), "requests"),
        reported_cost_nanos=charged,
        identity={"project": workspace} if workspace else {},
    )
