"""Anthropic Admin API messages usage report (`/v1/organizations/usage_report/messages`), one page per
file or a list of pages. One row per bucket x group; the natural key is the bucket start plus every
group field, so a re-pulled bucket (today's, still growing) replaces its earlier version.

Token semantics (FORMATS.md §2.1): `uncached_input_tokens` already excludes cache reads and writes, so
the kinds are taken as they are; thinking tokens are inside `output_tokens`. The report has no request
count. `server_tool_use.web_search_requests` has no place in a normalised row and is not carried.

The page and bucket helpers here are shared with the cost report, which has the same envelope.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.usage.models import Grain

GROUP_FIELDS = (
    "workspace_id",
    "api_key_id",
    "account_id",
    "service_account_id",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "speed",
)
MAX_MODEL_LENGTH = 200  # the catalog's column


def bucket_results(stream: IO[bytes], file_name: str) -> Iterator[tuple[int, dict, Any] | RowError]:
    """(position, bucket, result) for each result of each bucket of a report page or list of pages.

    Positions number the results from 1 across the file (a JSON document has no useful lines), so a
    message can point at one result and a resumed run can skip the ones already stored.
    """
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
            yield RowError(file_name, position, "data", "expected a report page with a data list", "")
            continue
        for bucket in page["data"]:
            results = bucket.get("results") if isinstance(bucket, dict) else None
            if not isinstance(results, list):
                position += 1
                raw = orjson.dumps(bucket).decode()
                yield RowError(file_name, position, "results", "expected a bucket with a results list", raw)
                continue
            for result in results:
                position += 1
                yield position, bucket, result


def raw_result(bucket: dict, result: Any) -> str:
    """The result with its bucket's bounds: enough to fix the record and submit it again."""
    bounds = {name: bucket.get(name) for name in ("starting_at", "ending_at")}
    return orjson.dumps({"bucket": bounds, "result": result}).decode()


def bucket_start_and_grain(bucket: dict) -> tuple[Any, int]:
    """The bucket's start (UTC) and grain, from `starting_at`/`ending_at` (RFC 3339)."""
    start = base.timestamp(bucket.get("starting_at"), "starting_at")
    end = base.timestamp(bucket.get("ending_at"), "ending_at")
    width = (end - start).total_seconds()
    if width <= 0:
        raise RowInvalid("ending_at", f"{bucket.get('ending_at')!r} is not after starting_at")
    if width <= 60:
        return start, Grain.MINUTE
    if width <= 3600:
        return start, Grain.HOUR
    return start, Grain.DAY


def natural_key(values: Iterable[object]) -> str:
    """A compact, stable key over group values (absent and null are the same; null is not "None")."""
    return hashlib.blake2b(orjson.dumps(list(values)), digest_size=16).hexdigest()


def checked_model(value: object, field: str) -> str:
    model = base.require_text(value, field)
    if len(model) > MAX_MODEL_LENGTH:
        raise RowInvalid(field, f"longer than {MAX_MODEL_LENGTH} characters")
    return model


def model_or(value: object, placeholder: str) -> str:
    """The model, or a placeholder naming why there is none (not grouped by model, a tool line)."""
    return placeholder if base.text(value) is None else checked_model(value, "model")


def required_tokens(result: dict, field: str) -> int:
    if result.get(field) is None:
        raise RowInvalid(field, "is missing")
    return base.tokens(result[field], field)


def nested(result: dict, field: str) -> dict:
    value = result.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RowInvalid(field, f"expected an object, got {type(value).__name__}")
    return value


class AnthropicUsage(base.Adapter):
    name = "anthropic_usage"
    description = "Anthropic Admin API messages usage report pages"
    basis = base.Basis.USAGE

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


def _row(bucket: dict, result: Any, position: int) -> NormalisedRow:
    if not isinstance(result, dict):
        raise RowInvalid("(result)", f"expected an object, got {type(result).__name__}")
    ts, grain = bucket_start_and_grain(bucket)
    cache_creation = nested(result, "cache_creation")
    tier = base.text(result.get("service_tier"))
    identity = {
        "workspace": base.text(result.get("workspace_id")),
        "api_key": base.text(result.get("api_key_id")),
        "user": base.text(result.get("account_id")),
        "service_account": base.text(result.get("service_account_id")),
    }
    return NormalisedRow(
        ts=ts,
        grain=grain,
        record_key=natural_key(result.get(name) for name in GROUP_FIELDS),
        provider="anthropic",
        model=model_or(result.get("model"), "(not grouped by model)"),
        line=position,
        input_uncached_tokens=required_tokens(result, "uncached_input_tokens"),
        cache_read_tokens=base.tokens(result.get("cache_read_input_tokens"), "cache_read_input_tokens"),
        cache_write_5m_tokens=base.tokens(
            cache_creation.get("ephemeral_5m_input_tokens"), "cache_creation.ephemeral_5m_input_tokens"
        ),
        cache_write_1h_tokens=base.tokens(
            cache_creation.get("ephemeral_1h_input_tokens"), "cache_creation.ephemeral_1h_input_tokens"
        ),
        output_tokens=required_tokens(result, "output_tokens"),
        batch=tier == "batch",
        service_tier=tier,
        identity={kind: value for kind, value in identity.items() if value},
    )
