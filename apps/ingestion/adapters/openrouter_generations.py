"""OpenRouter generation records (`GET /api/v1/generation?id=...`, FORMATS.md §7.1), one per line (JSONL)
as the API returns them (`{"data": {...}}`) or bare; a JSON array of them also reads.

Basis TELEMETRY: one row per request, keyed by the generation `id`, attributed by `external_user`
and `app_id`. Tokens are the provider's own (`native_tokens_*`, which OpenRouter bills on);
`native_tokens_prompt` includes `native_tokens_cached`, and the completion includes reasoning.
Cache writes are not reported. The row is priced at the hosting endpoint's list price (OpenRouter
passes the endpoint's price through), so the provider is the endpoint (`provider_name`) and the
model is OpenRouter's id without its vendor prefix. `total_cost` is what OpenRouter charged; for
BYOK requests that is only OpenRouter's fee, and `upstream_inference_cost` (paid to the provider on
the customer's own key) is added to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.ingestion.adapters.jsonlines import iter_json_records
from apps.usage.models import Grain

# OpenRouter's endpoint names -> the provider names the catalog knows (apps/catalog/normalise.py).
# A Google Vertex endpoint is priced by Google; one in AI Studio too, under the Gemini API name.
ENDPOINT_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google vertex": "vertex_ai",
    "google ai studio": "gemini",
    "amazon bedrock": "bedrock",
    "azure": "azure",
    "groq": "groq",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "xai": "xai",
}


def endpoint_provider_and_model(provider_name: str | None, model: str) -> tuple[str, str]:
    """(provider, model) to store and price a row with, from OpenRouter's endpoint and model id.

    Without an endpoint the row stays OpenRouter's, under OpenRouter's own model id.
    """
    if not provider_name:
        return "openrouter", model
    provider = ENDPOINT_PROVIDERS.get(provider_name.lower(), provider_name.lower())
    return provider, model.split("/", 1)[1] if "/" in model else model


class OpenRouterGenerations(base.Adapter):
    name = "openrouter_generations"
    description = "OpenRouter generation records (JSONL of /api/v1/generation responses)"
    joinable_lines = True

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        for line, record, raw in iter_json_records(stream):
            if isinstance(record, RowError):
                yield RowError(file_name, line, record.field, record.reason, raw)
                continue
            try:
                yield _row(record, line)
            except RowInvalid as error:
                yield RowError(file_name, line, error.field, error.reason, raw)


def _native(generation: dict[str, Any], native: str, normalised: str) -> int:
    # OpenRouter bills on the provider's own token counts; its normalised counts stand in only when
    # a record carries no native count at all.
    value = generation.get(native)
    if value is None:
        return base.tokens(generation.get(normalised), normalised)
    return base.tokens(value, native)


def _row(record: Any, line: int) -> NormalisedRow:
    if not isinstance(record, dict):
        raise RowInvalid("(record)", f"expected an object, got {type(record).__name__}")
    generation = record.get("data", record)
    if not isinstance(generation, dict):
        raise RowInvalid("data", f"expected one generation object, got {type(generation).__name__}")
    generation_id = base.require_text(generation.get("id"), "id")
    ts = base.timestamp(generation.get("created_at"), "created_at")
    raw_model = base.require_text(generation.get("model"), "model")

    prompt = _native(generation, "native_tokens_prompt", "tokens_prompt")
    cached = base.tokens(generation.get("native_tokens_cached"), "native_tokens_cached")
    if cached > prompt:
        raise RowInvalid("native_tokens_cached", f"{cached} is more than native_tokens_prompt ({prompt})")
    completion = _native(generation, "native_tokens_completion", "tokens_completion")
    reasoning = base.tokens(generation.get("native_tokens_reasoning"), "native_tokens_reasoning")
    if reasoning > completion:
        raise RowInvalid(
            "native_tokens_reasoning", f"{reasoning} is more than native_tokens_completion ({completion})"
        )

    charged = base.usd_to_nanos(generation.get("total_cost"), "total_cost")
    if charged is None:
        charged = base.usd_to_nanos(generation.get("usage"), "usage")
    if generation.get("is_byok") is True and charged is not None:
        upstream = base.usd_to_nanos(generation.get("upstream_inference_cost"), "upstream_inference_cost")
        charged += upstream or 0

    provider, model = endpoint_provider_and_model(base.text(generation.get("provider_name")), raw_model)
    identity = {
        "user": base.text(generation.get("external_user")),
        "project": base.text(generation.get("app_id")),
    }
    return NormalisedRow(
        ts=ts,
        grain=Grain.REQUEST,
        record_key=generation_id,
        provider=provider,
        model=model,
        line=line,
        input_uncached_tokens=prompt - cached,
        cache_read_tokens=cached,
        output_tokens=completion,
        reasoning_tokens=reasoning,
        requests=1,
        # A cancelled stream is still billed for what was generated; only an error is a failed request.
        failed=generation.get("finish_reason") == "error",
        service_tier=base.text(generation.get("service_tier")),
        reported_cost_nanos=charged,
        identity={kind: value for kind, value in identity.items() if value},
    )
