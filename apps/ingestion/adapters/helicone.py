"""Helicone request query pages (`POST /v1/request/query-clickhouse`, FORMATS.md §7.2): `{"data": [...],
"error": null}`, one page per file, or the same requests as JSONL / a JSON array (`@helicone/export`).

Basis TELEMETRY: one row per request, keyed by `request_id` (offset pagination shifts pages while new
requests arrive, so pages overlap). Attribution: `request_user_id` (the Helicone-User-Id header) and
the `properties` (Helicone-Property-* headers: Team, Task, App).

Token semantics follow the provider's API: for Anthropic-native requests `prompt_tokens` excludes
cache reads and writes (uncached input, as Anthropic reports it); for everyone else it includes them
and they are subtracted. Newer pages carry `reasoning_tokens` apart from `completion_tokens` (Helicone
sums the three into `total_tokens`), so they are added back to the output.

Money: `costUSD` (older pages) and `cost` (newer pages) are both US dollars. Helicone stores cost in
ClickHouse multiplied by 10^9 and its query API divides it back; a raw dump of its `cost` column is
therefore not this format. A Helicone cache hit (a `cache_reference_id` pointing at an earlier
request) copies that request's tokens but reached no provider: it counts as a request with no tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.ingestion.adapters.jsonlines import iter_json_records
from apps.usage.models import Grain

NO_CACHE_REFERENCE = {"", "00000000-0000-0000-0000-000000000000"}  # Helicone's DEFAULT_UUID
# Claude served through a cloud's native endpoint reports usage the Anthropic way, too.
_CLAUDE_HOSTS = {"bedrock", "aws", "vertex", "vertexai", "vertex_ai", "google"}
# Property names (lower case) -> identity kinds the attribution resolver knows.
_PROPERTY_KINDS = {
    "team": "gateway_team",
    "task": "tag",
    "feature": "tag",
    "use_case": "tag",
    "app": "project",
    "project": "project",
    "user": "user",
}


class Helicone(base.Adapter):
    name = "helicone"
    description = "Helicone request query pages (JSON, JSONL or a JSON array of requests)"
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


def anthropic_native(provider: str, model: str) -> bool:
    return provider == "anthropic" or (provider in _CLAUDE_HOSTS and "claude" in model.lower())


def _identity(record: dict[str, Any]) -> dict[str, str]:
    identity: dict[str, str] = {}
    properties = record.get("properties") or record.get("request_properties") or {}
    if not isinstance(properties, dict):
        raise RowInvalid("properties", f"expected an object, got {type(properties).__name__}")
    for name, value in properties.items():
        kind = _PROPERTY_KINDS.get(str(name).strip().lower())
        text = base.text(value)
        if kind and text and kind not in identity:
            identity[kind] = text
    user = base.text(record.get("request_user_id"))
    if user:
        identity["user"] = user
    return identity


def _row(record: Any, line: int) -> NormalisedRow:
    if not isinstance(record, dict):
        raise RowInvalid("(record)", f"expected an object, got {type(record).__name__}")
    if record.get("request_id") is None and record.get("error"):
        raise RowInvalid("error", f"the page is an error response: {record['error']}")
    request_id = base.require_text(record.get("request_id"), "request_id")
    ts = base.timestamp(record.get("request_created_at"), "request_created_at")
    status = record.get("response_status")
    if not isinstance(status, int) or isinstance(status, bool):
        raise RowInvalid("response_status", f"expected an HTTP status, got {status!r}")
    if status == -1:
        # Pending, or lost before any response: a request-grain row is never replaced once stored,
        # so storing it now would keep it empty forever. A later export brings it in once it has ended.
        raise RowInvalid("response_status", "is -1 (no response yet): ingest it from a later export")
    # `model` is Helicone's resolved name; the others are what the request and response said.
    names = ("model", "model_override", "response_model", "request_model")
    model = next(filter(None, (base.text(record.get(name)) for name in names)), None)
    if model is None:
        raise RowInvalid("model", "is missing (and so are response_model and request_model)")
    provider = (base.text(record.get("provider")) or "").lower()

    prompt = base.tokens(record.get("prompt_tokens"), "prompt_tokens")
    cache_read = base.tokens(record.get("prompt_cache_read_tokens"), "prompt_cache_read_tokens")
    cache_write = base.tokens(record.get("prompt_cache_write_tokens"), "prompt_cache_write_tokens")
    if anthropic_native(provider, model):
        uncached = prompt
    else:
        uncached = prompt - cache_read - cache_write
        if uncached < 0:
            raise RowInvalid(
                "prompt_tokens",
                f"{prompt} is less than its cache reads ({cache_read}) and writes ({cache_write}),"
                f" which it includes for provider {record.get('provider')}",
            )
    reasoning = base.tokens(record.get("reasoning_tokens"), "reasoning_tokens")
    output = base.tokens(record.get("completion_tokens"), "completion_tokens") + reasoning

    cost = record.get("costUSD")
    reported = (
        base.usd_to_nanos(cost, "costUSD")
        if cost is not None
        else base.usd_to_nanos(record.get("cost"), "cost")
    )
    row = NormalisedRow(
        ts=ts,
        grain=Grain.REQUEST,
        record_key=request_id,
        provider=provider,
        model=model,
        line=line,
        input_uncached_tokens=uncached,
        cache_read_tokens=cache_read,
        cache_write_5m_tokens=cache_write,
        output_tokens=output,
        reasoning_tokens=reasoning,
        requests=1,
        failed=status >= 400 or status == 0,
        reported_cost_nanos=reported,
        identity=_identity(record),
    )
    if (base.text(record.get("cache_reference_id")) or "") not in NO_CACHE_REFERENCE:
        row.input_uncached_tokens = row.cache_read_tokens = row.cache_write_5m_tokens = 0
        row.output_tokens = row.reasoning_tokens = 0
    return row
