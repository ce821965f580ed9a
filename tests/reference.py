"""An independent checker: expected totals straight from source files, with plain `json` and
genai-prices' own calc_price — none of SpendWatch's adapters, pricer or pipeline."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from genai_prices import Usage, calc_price

PROVIDERS = {"vertex_ai": "google", "bedrock": "aws", "openai": "openai", "anthropic": "anthropic"}


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def litellm_expected(path: Path) -> dict[str, dict]:
    """Per model: tokens by kind, requests and list cost (exact Decimal) of a LiteLLM spend-log JSON file."""
    totals: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
    for record in json.loads(path.read_text()):
        usage = record["metadata"]["usage_object"]
        cache_read = usage.get("cache_read_input_tokens", usage["prompt_tokens_details"]["cached_tokens"])
        cache_write = usage.get("cache_creation_input_tokens", 0)
        prompt, completion = record["prompt_tokens"], record["completion_tokens"]
        when = dt.datetime.fromisoformat(record["startTime"])
        price = calc_price(
            Usage(
                input_tokens=prompt,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
                output_tokens=completion,
            ),
            record["model"],
            provider_id=PROVIDERS[record["custom_llm_provider"]],
            genai_request_timestamp=when,
        ).total_price
        model = totals[record["model"]]
        model["input_uncached_tokens"] += prompt - cache_read - cache_write
        model["cache_read_tokens"] += cache_read
        model["cache_write_tokens"] += cache_write
        model["output_tokens"] += completion
        model["requests"] += 1
        model["cost"] += price
        model["reported"] += Decimal(repr(record["spend"]))
    return {name: dict(values) for name, values in totals.items()}


def openai_usage_expected(paths: list[Path]) -> dict[str, dict]:
    """Per model, de-duplicated on (bucket start, group fields): the last page's version of a bucket wins."""
    buckets: dict[tuple, dict] = {}
    for path in paths:
        for bucket in json.loads(path.read_text())["data"]:
            for result in bucket["results"]:
                key = (bucket["start_time"],) + tuple(
                    result.get(f)
                    for f in ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")
                )
                buckets[key] = {"start": bucket["start_time"], **result}
    totals: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
    for result in buckets.values():
        cached = result.get("input_cached_tokens") or 0
        write = result.get("input_cache_write_tokens") or 0
        price = calc_price(
            Usage(
                input_tokens=result["input_tokens"],
                cache_read_tokens=cached,
                cache_write_tokens=write,
                output_tokens=result["output_tokens"],
            ),
            result["model"],
            provider_id="openai",
            genai_request_timestamp=dt.datetime.fromtimestamp(result["start"], tz=dt.UTC),
            price_context={"processing": "batch"} if result.get("batch") else None,
        ).total_price
        model = totals[result["model"]]
        model["input_uncached_tokens"] += result["input_tokens"] - cached - write
        model["cache_read_tokens"] += cached
        model["cache_write_tokens"] += write
        model["output_tokens"] += result["output_tokens"]
        model["requests"] += result["num_model_requests"]
        model["cost"] += price
    return {name: dict(values) for name, values in totals.items()}
