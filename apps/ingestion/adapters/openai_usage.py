"""OpenAI Admin API Usage pages (`/v1/organization/usage/completions`), one page per file or a list of
pages. One row per bucket x group; the natural key is the bucket start plus every group field, so a
re-pulled bucket (today's, still growing) replaces its earlier version.

Token semantics (FORMATS.md §1.2): `input_tokens` already contains cached and cache-write tokens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import IO, Any

import orjson

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.usage.models import Grain

COMPLETIONS_RESULT = "organization.usage.completions.result"
GROUP_FIELDS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")


def bucket_grain(start: int, end: int) -> int:
    # The first bucket may be cut short (it starts at the requested start_time), so go by width.
    width = end - start
    if width <= 60:
        return Grain.MINUTE
    if width <= 3600:
        return Grain.HOUR
    return Grain.DAY


def group_key(result: dict) -> str:
    """A compact, stable key over every group field (absent and null are the same)."""
    parts = "|".join(f"{name}={result.get(name)}" for name in GROUP_FIELDS)
    return hashlib.blake2b(parts.encode(), digest_size=16).hexdigest()


class OpenAIUsage(base.Adapter):
    name = "openai_usage"
    description = "OpenAI Admin API usage pages (completions)"
    basis = base.Basis.USAGE

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        data = stream.read()
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            yield RowError(file_name, 1, "(document)", f"invalid JSON: {error}", "")
            return
        pages = document if isinstance(document, list) else [document]
        position = 0
        for page in pages:
            if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                position += 1
                yield RowError(file_name, position, "data", "expected a usage page with a data list", "")
                continue
            for bucket in page["data"]:
                results = bucket.get("results") if isinstance(bucket, dict) else None
                if not isinstance(results, list):
                    position += 1
                    yield RowError(
                        file_name, position, "results", "expected a bucket with a results list", ""
                    )
                    continue
                for result in results:
                    position += 1
                    try:
                        yield _row(bucket, result, position)
                    except RowInvalid as error:
                        raw = orjson.dumps(
                            {
                                "bucket": {k: bucket.get(k) for k in ("start_time", "end_time")},
                                "result": result,
                            }
                        ).decode()
                        yield RowError(file_name, position, error.field, error.reason, raw)


def _row(bucket: dict, result: Any, position: int) -> NormalisedRow:
    if not isinstance(result, dict):
        raise RowInvalid("(result)", f"expected an object, got {type(result).__name__}")
    kind = result.get("object")
    if kind != COMPLETIONS_RESULT:
        raise RowInvalid("object", f"unsupported result object {kind!r} (expected {COMPLETIONS_RESULT})")
    start = bucket.get("start_time")
    end = bucket.get("end_time")
    if not isinstance(start, int) or isinstance(start, bool):
        raise RowInvalid("start_time", f"expected unix seconds, got {start!r}")
    if not isinstance(end, int) or isinstance(end, bool) or end <= start:
        raise RowInvalid("end_time", f"expected unix seconds after start_time, got {end!r}")
    total_input = base.tokens(result.get("input_tokens"), "input_tokens")
    cached = base.tokens(result.get("input_cached_tokens"), "input_cached_tokens")
    cache_write = base.tokens(result.get("input_cache_write_tokens"), "input_cache_write_tokens")
    uncached = total_input - cached - cache_write
    if uncached < 0:
        raise RowInvalid(
            "input_tokens", f"{total_input} is less than cached ({cached}) + cache writes ({cache_write})"
        )
    identity = {
        "project": base.text(result.get("project_id")),
        "user": base.text(result.get("user_id")),
        "api_key": base.text(result.get("api_key_id")),
    }
    return NormalisedRow(
        ts=base.timestamp(start, "start_time"),
        grain=bucket_grain(start, end),
        record_key=group_key(result),
        provider="openai",
        model=base.text(result.get("model")) or "(not grouped by model)",
        line=position,
        input_uncached_tokens=uncached,
        cache_read_tokens=cached,
        cache_write_5m_tokens=cache_write,
        output_tokens=base.tokens(result.get("output_tokens"), "output_tokens"),
        requests=base.optional_count(result.get("num_model_requests"), "num_model_requests"),
        batch=bool(result.get("batch")),
        service_tier=base.text(result.get("service_tier")),
        identity={kind: value for kind, value in identity.items() if value},
    )
