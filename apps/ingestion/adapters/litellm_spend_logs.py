"""LiteLLM proxy spend logs: the `/spend/logs` JSON (array or {"data": [...]}), JSONL, or a CSV dump
of the `LiteLLM_SpendLogs` table. One row per request; `request_id` is the natural key.

Token semantics (FORMATS.md §6.3): `prompt_tokens` follows OpenAI, so it already contains cache reads
and, for Anthropic-style providers, cache writes; the split lives in `metadata.usage_object`.
`spend` is LiteLLM's own computed cost: kept as reported, never used as ours.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.ingestion.adapters.jsonlines import iter_json_records
from apps.usage.models import Grain


class LiteLLMSpendLogs(base.Adapter):
    name = "litellm_spend_logs"
    description = "LiteLLM proxy spend logs (JSON, JSONL or CSV dump of LiteLLM_SpendLogs)"
    joinable_lines = True
    envelope_key = "data"

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        if file_name.lower().endswith(".csv"):
            records: Iterable[tuple[int, Any, str]] = _csv_records(stream, file_name)
        else:
            records = iter_json_records(stream, envelope_key=self.envelope_key)
        for line, record, raw in records:
            yield read_record(record, line, raw, file_name)

    def parse_columns(self, stream: IO[bytes], file_name: str) -> Iterator[Any] | None:
        if file_name.lower().endswith(".csv"):
            return None
        from apps.ingestion.adapters.litellm_columns import read_columns

        return read_columns(stream, file_name)


def read_record(record: Any, line: int, raw: str, file_name: str) -> NormalisedRow | RowError:
    """One parsed record (or the reader's RowError for its line) -> a row or a row error."""
    if isinstance(record, RowError):
        return RowError(file_name, line, record.field, record.reason, raw)
    try:
        return _row(record, line)
    except RowInvalid as error:
        return RowError(file_name, line, error.field, error.reason, raw)


def _csv_records(stream: IO[bytes], file_name: str) -> Iterator[tuple[int, Any, str]]:
    reader = csv.DictReader(base.csv_text(stream))
    header = base.csv_header(reader, file_name)
    if "request_id" not in header:
        raise ValueError(f"{file_name}: the CSV header has no request_id column (got {header or None!r})")
    for start, record in base.csv_records(reader):
        if isinstance(record, RowInvalid):
            yield start, RowError(file_name, start, record.field, record.reason, ""), ""
            continue
        # Values beyond the header's columns come as a list (DictReader's restkey).
        cells = (
            cell for value in record.values() for cell in (value if isinstance(value, list) else [value])
        )
        yield start, record, ",".join(cell or "" for cell in cells)


def _as_object(value: Any, field: str) -> dict:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise RowInvalid(field, "is not valid JSON") from None
    if not isinstance(value, dict):
        raise RowInvalid(field, f"expected an object, got {type(value).__name__}")
    return value


def _nested(usage: dict, key: str) -> dict:
    """A detail object inside the usage object: absent or null is empty, anything but an object is refused."""
    value = usage.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RowInvalid(f"metadata.usage_object.{key}", f"expected an object, got {type(value).__name__}")
    return value


def _task_from_tags(tags: Any) -> str | None:
    if isinstance(tags, str):
        try:
            tags = orjson.loads(tags) if tags.startswith("[") else [tags]
        except orjson.JSONDecodeError:
            return None
    for tag in tags or ():
        if isinstance(tag, str) and tag.startswith("task:"):
            return tag[len("task:") :]
    return None


def _first_given(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def identity(record: dict, metadata: dict) -> dict[str, str]:
    """The raw attribution fields of one spend log (top-level columns win over metadata copies)."""
    spend_metadata = metadata.get("spend_logs_metadata") or {}
    task = spend_metadata.get("task") if isinstance(spend_metadata, dict) else None
    fields = {
        "user": base.text(record.get("user")) or base.text(metadata.get("user_api_key_user_id")),
        "api_key": base.text(record.get("api_key")) or base.text(metadata.get("user_api_key")),
        "api_key_alias": base.text(metadata.get("user_api_key_alias")),
        "gateway_team": base.text(record.get("team_id")) or base.text(metadata.get("user_api_key_team_id")),
        "gateway_team_alias": base.text(metadata.get("user_api_key_team_alias")),
        "tag": base.text(task) or _task_from_tags(record.get("request_tags")),
        "end_user": base.text(record.get("end_user")),
    }
    return {kind: value for kind, value in fields.items() if value}


def _row(record: Any, line: int) -> NormalisedRow:
    if not isinstance(record, dict):
        raise RowInvalid("(record)", f"expected an object, got {type(record).__name__}")
    request_id = base.require_text(record.get("request_id"), "request_id")
    ts = base.timestamp(record.get("startTime"), "startTime")
    metadata = _as_object(record.get("metadata"), "metadata")
    usage = _as_object(metadata.get("usage_object"), "metadata.usage_object")

    prompt = base.tokens(record.get("prompt_tokens"), "prompt_tokens")
    completion = base.tokens(record.get("completion_tokens"), "completion_tokens")
    prompt_details = _nested(usage, "prompt_tokens_details")
    completion_details = _nested(usage, "completion_tokens_details")
    # Anthropic-style usage names its cache reads; OpenAI-style nests them. A null is "not given".
    cache_read = base.tokens(
        _first_given(usage.get("cache_read_input_tokens"), prompt_details.get("cached_tokens")),
        "metadata.usage_object.cache_read_input_tokens",
    )
    cache_creation = _nested(usage, "cache_creation")
    cache_write_1h = base.tokens(
        cache_creation.get("ephemeral_1h_input_tokens"), "metadata.usage_object.cache_creation"
    )
    cache_write_total = base.tokens(
        usage.get("cache_creation_input_tokens"), "metadata.usage_object.cache_creation_input_tokens"
    )
    if cache_write_1h > cache_write_total:
        cache_write_total = cache_write_1h
    uncached = prompt - cache_read - cache_write_total
    if uncached < 0:
        raise RowInvalid(
            "prompt_tokens",
            f"{prompt} is less than its cache reads ({cache_read}) and writes ({cache_write_total})",
        )
    reasoning = base.tokens(
        completion_details.get("reasoning_tokens"), "metadata.usage_object.completion_tokens_details"
    )
    if reasoning > completion:
        raise RowInvalid("completion_tokens", f"{completion} is less than its reasoning tokens ({reasoning})")

    status = base.text(record.get("status")) or base.text(metadata.get("status")) or "success"
    if status not in {"success", "failure"}:
        raise RowInvalid("status", f"unknown status {status!r} (expected success or failure)")
    cache_hit = str(record.get("cache_hit")).lower() == "true"

    row = NormalisedRow(
        ts=ts,
        grain=Grain.REQUEST,
        record_key=request_id,
        provider=base.text(record.get("custom_llm_provider")) or "",
        model=base.text(record.get("model")) or base.text(record.get("model_group")) or "",
        line=line,
        input_uncached_tokens=uncached,
        cache_read_tokens=cache_read,
        cache_write_5m_tokens=cache_write_total - cache_write_1h,
        cache_write_1h_tokens=cache_write_1h,
        output_tokens=completion,
        reasoning_tokens=reasoning,
        requests=1,
        failed=status == "failure",
        reported_cost_nanos=base.usd_to_nanos(record.get("spend"), "spend"),
        identity=identity(record, metadata),
        prompt=base.last_user_message(record.get("messages")),
    )
    if cache_hit:
        # LiteLLM's own cache answered: the provider was not called, so there are no billable tokens.
        row.input_uncached_tokens = row.cache_read_tokens = row.output_tokens = row.reasoning_tokens = 0
        row.cache_write_5m_tokens = row.cache_write_1h_tokens = 0
    if not row.model:
        raise RowInvalid("model", "is missing")
    return row
