"""OpenTelemetry GenAI spans in OTLP/JSON (FORMATS.md §8): an ExportTraceServiceRequest document
(`resourceSpans[].scopeSpans[].spans[]`), or one such request per line as the collector's file
exporter writes them.

Basis TELEMETRY: one row per model-call span, keyed by traceId + spanId (hex; base64 ids from generic
protobuf-JSON encoders are turned into the same hex). The "line" of a span is its position in the
file, counting every span from 1, because an OTLP document has no meaningful line numbers and several
spans share a JSONL line; an unreadable JSONL line takes one position too.

Counted only once: agent and workflow spans (`invoke_agent`, `invoke_workflow`, ...) may carry the sum
of their children's usage, so only model-call operations (`chat`, `generate_content`,
`text_completion`, `embeddings`) are counted; the others are skipped whatever they carry. A span with
usage whose operation is unknown (or missing, without the pre-1.27 `llm.request.type`) is rejected,
because it cannot be told from such a sum.

Token semantics: `gen_ai.usage.input_tokens` SHOULD include cache reads and writes, so they are
subtracted; an instrumentation that copies Anthropic's uncached count instead reveals itself by cache
tokens above the input, and its input is then taken as uncached. Likewise output SHOULD include
reasoning; a reasoning count above the output means it was reported apart, and it is added.

Attribution: `user.id` (or the deprecated `enduser.id`), `service.name` as the project,
`service.namespace` as the team (OTel's own example of a namespace is the owning team) unless an
`app.team` attribute says otherwise, and `app.task` as the task; span attributes win over resource
attributes. No cost is defined by the conventions: rows are priced from their tokens.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Iterator
from typing import IO, Any

import orjson

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.ingestion.adapters.jsonlines import iter_json_records
from apps.usage.models import Grain

MODEL_CALLS = {"chat", "generate_content", "text_completion", "embeddings"}
NOT_MODEL_CALLS = {
    "invoke_agent",
    "create_agent",
    "execute_tool",
    "invoke_workflow",
    "retrieval",
}
# Traceloop/OpenLLMetry's attribute from before gen_ai.operation.name existed.
LEGACY_REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}
USAGE_ATTRIBUTES = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
)
# gen_ai.provider.name values -> the provider names the catalog knows (apps/catalog/normalise.py).
PROVIDERS = {
    "aws.bedrock": "bedrock",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure_ai",
    "gcp.gemini": "gemini",
    "gcp.vertex_ai": "vertex_ai",
    "gcp.gen_ai": "google",
    "mistral_ai": "mistral",
    "x_ai": "xai",
}
TEAM_ATTRIBUTES = ("app.team", "team.name", "service.namespace")
TASK_ATTRIBUTES = ("app.task", "task.name")
STATUS_ERROR = {2, "2", "STATUS_CODE_ERROR"}
_HEX = re.compile(r"[0-9a-fA-F]+")


class OtelGenAI(base.Adapter):
    name = "otel_genai"
    description = "OpenTelemetry GenAI spans (OTLP/JSON export requests, one document or one per line)"
    joinable_lines = True

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        position = 0
        for line, request, raw in iter_json_records(stream):
            if isinstance(request, RowError):
                position += 1
                reason = (
                    f"{request.reason} (file line {line})" if request.field == "(line)" else request.reason
                )
                yield RowError(file_name, position, request.field, reason, raw)
                continue
            resource_spans = request.get("resourceSpans") if isinstance(request, dict) else None
            if not isinstance(resource_spans, list):
                position += 1
                yield RowError(
                    file_name, position, "resourceSpans", "expected an OTLP export request", raw[:2000]
                )
                continue
            for raw_resource, resource, span in _spans(resource_spans):
                position += 1
                try:
                    row = _row(resource, span, position)
                except RowInvalid as error:
                    yield RowError(file_name, position, error.field, error.reason, _raw(raw_resource, span))
                    continue
                if row is not None:
                    yield row


def _raw(resource: Any, span: Any) -> str:
    """A rejected span as a one-span export request: fixed, the line can be ingested again as it is."""
    request = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}
    return orjson.dumps(request, default=repr).decode()


def _spans(resource_spans: list) -> Iterator[tuple[Any, dict[str, Any], Any]]:
    """(resource as sent, its attributes, span) for every span of an export request."""
    for resource_span in resource_spans:
        if not isinstance(resource_span, dict):
            continue
        raw_resource = resource_span.get("resource") or {}
        resource = _attributes(raw_resource.get("attributes") if isinstance(raw_resource, dict) else None)
        scopes = resource_span.get("scopeSpans") or resource_span.get("instrumentationLibrarySpans")
        # Parts that are not lists hold no span, like the parts that are not objects.
        for scope in scopes if isinstance(scopes, list) else ():
            spans = scope.get("spans") if isinstance(scope, dict) else None
            for span in spans if isinstance(spans, list) else ():
                yield raw_resource, resource, span


def _value(value: Any) -> Any:
    """An OTLP AnyValue as a plain value; intValue stays as sent (a string in OTLP/JSON)."""
    if not isinstance(value, dict):
        return value
    for kind in ("stringValue", "intValue", "doubleValue", "boolValue", "bytesValue"):
        if kind in value:
            return value[kind]
    if "arrayValue" in value:
        return [_value(item) for item in _list_of(value["arrayValue"])]
    if "kvlistValue" in value:
        return _attributes(_list_of(value["kvlistValue"]))
    return None


def _list_of(container: Any) -> list:
    """The `values` of an ArrayValue or KeyValueList; nothing when either is not of its shape."""
    values = container.get("values") if isinstance(container, dict) else None
    return values if isinstance(values, list) else []


def _attributes(items: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    # Attributes that are not a list (a malformed export) are no attributes, like items that are not objects.
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            result[item["key"]] = _value(item.get("value"))
    return result


def _hex_id(value: Any, size: int, field: str) -> str:
    """A trace (16 bytes) or span (8 bytes) id as lower-case hex, from hex or from base64."""
    text = value.strip() if isinstance(value, str) else ""
    if len(text) == size * 2 and _HEX.fullmatch(text) and text.strip("0"):
        return text.lower()
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != size or not any(decoded):
        raise RowInvalid(field, f"expected an id of {size} bytes in hex or base64, got {value!r}")
    return decoded.hex()


def _nanos_to_datetime(value: Any, field: str) -> dt.datetime:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise RowInvalid(field, f"expected unix nanoseconds, got {value!r}")
    nanos = int(value)
    if nanos == 0:
        raise RowInvalid(field, "is zero (the span has no start time)")
    seconds, rest = divmod(nanos, 1_000_000_000)
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC) + dt.timedelta(microseconds=rest // 1000)
    except (OverflowError, OSError, ValueError):
        raise RowInvalid(field, f"not a time: {value!r}") from None


def _operation(attributes: dict[str, Any]) -> str | None:
    operation = base.text(attributes.get("gen_ai.operation.name"))
    if operation:
        return operation
    legacy = base.text(attributes.get("llm.request.type"))
    return LEGACY_REQUEST_TYPES.get(legacy or "")


def _first_text(attributes: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = base.text(attributes.get(name))
        if value:
            return value
    return None


def _row(resource: dict[str, Any], span: Any, position: int) -> NormalisedRow | None:
    if not isinstance(span, dict):
        raise RowInvalid("(span)", f"expected an object, got {type(span).__name__}")
    attributes = _attributes(span.get("attributes"))
    operation = _operation(attributes)
    has_usage = any(attributes.get(name) is not None for name in USAGE_ATTRIBUTES)
    if operation not in MODEL_CALLS:
        if not has_usage or operation in NOT_MODEL_CALLS:
            return None  # not a model call: any usage it carries is its children's, counted there
        raise RowInvalid(
            "gen_ai.operation.name",
            f"{operation or 'missing'}: a span with usage must say whether it is a model call"
            f" ({', '.join(sorted(MODEL_CALLS))}) or sums its children",
        )
    key = f"{_hex_id(span.get('traceId'), 16, 'traceId')}/{_hex_id(span.get('spanId'), 8, 'spanId')}"
    ts = _nanos_to_datetime(span.get("startTimeUnixNano"), "startTimeUnixNano")
    model = _first_text(attributes, ("gen_ai.response.model", "gen_ai.request.model"))
    if model is None:
        raise RowInvalid("gen_ai.response.model", "is missing (and so is gen_ai.request.model)")
    raw_provider = _first_text(attributes, ("gen_ai.provider.name", "gen_ai.system")) or ""

    input_name = "gen_ai.usage.input_tokens"
    if attributes.get(input_name) is None and attributes.get("gen_ai.usage.prompt_tokens") is not None:
        input_name = "gen_ai.usage.prompt_tokens"
    output_name = "gen_ai.usage.output_tokens"
    if attributes.get(output_name) is None and attributes.get("gen_ai.usage.completion_tokens") is not None:
        output_name = "gen_ai.usage.completion_tokens"
    input_tokens = base.tokens(attributes.get(input_name), input_name)
    output = base.tokens(attributes.get(output_name), output_name)
    cache_read_name = "gen_ai.usage.cache_read.input_tokens"
    cache_write_name = "gen_ai.usage.cache_creation.input_tokens"
    reasoning_name = "gen_ai.usage.reasoning.output_tokens"
    cache_read = base.tokens(attributes.get(cache_read_name), cache_read_name)
    cache_write = base.tokens(attributes.get(cache_write_name), cache_write_name)
    reasoning = base.tokens(attributes.get(reasoning_name), reasoning_name)
    uncached = input_tokens - cache_read - cache_write
    if uncached < 0:
        uncached = input_tokens  # input reported without its cache tokens (Anthropic's convention)
    if reasoning > output:
        output += reasoning  # output reported without its reasoning tokens (Gemini's candidates count)

    merged = {**resource, **attributes}
    identity = {
        "user": _first_text(merged, ("user.id", "enduser.id")),
        "project": _first_text(merged, ("service.name",)),
        "gateway_team": _first_text(merged, TEAM_ATTRIBUTES),
        "tag": _first_text(merged, TASK_ATTRIBUTES),
    }
    status = span.get("status")
    status_code = status.get("code") if isinstance(status, dict) else None
    return NormalisedRow(
        ts=ts,
        grain=Grain.REQUEST,
        record_key=key,
        provider=PROVIDERS.get(raw_provider, raw_provider),
        model=model,
        line=position,
        input_uncached_tokens=uncached,
        cache_read_tokens=cache_read,
        cache_write_5m_tokens=cache_write,
        output_tokens=output,
        reasoning_tokens=reasoning,
        requests=1,
        failed=(isinstance(status_code, int | str) and status_code in STATUS_ERROR)
        or attributes.get("error.type") is not None,
        identity={kind: value for kind, value in identity.items() if value},
    )
