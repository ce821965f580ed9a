"""Gemini / Vertex AI `GenerateContentResponse` records with their `usageMetadata` (FORMATS.md §5.2),
one response per line (JSONL) or a JSON array; camelCase (REST) and snake_case (the Python SDK's
`model_dump()`) both read. `responseId` is the natural key.

Token semantics: `promptTokenCount` includes `cachedContentTokenCount`, so uncached input is the
difference (a row where the cached part exceeds the prompt is rejected). `toolUsePromptTokenCount` is
prompt the model read from tools (search, code execution) and is billed as input, so it is added to
uncached input. `thoughtsTokenCount` is NOT inside `candidatesTokenCount`: output is candidates +
thoughts, and reasoning is the thoughts. Zero counts are omitted by the API and read as 0.

Streaming logs every chunk; usage on the chunks is cumulative and only the last chunk has a
`finishReason`. Chunks without one are held back per `responseId` and dropped when the final chunk
arrives; a stream that never finished yields its last chunk at the end of the file (or once
OPEN_STREAMS_LIMIT later streams have opened, which keeps memory bounded). Across files the first copy
of a response stands, so ship a stream's chunks in one file.
The response carries no cost and no attribution (a `labels` object, if the logger adds one, is read).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.ingestion.adapters.jsonlines import iter_json_records
from apps.usage.models import Grain

OPEN_STREAMS_LIMIT = 10_000  # a stream silent for this many other streams is taken as cut off
MAX_KEY_LENGTH = 200  # the ledger keeps natural keys up to 200 characters
# REST (camelCase) name -> Python SDK model_dump() (snake_case) name.
SNAKE = {
    "responseId": "response_id",
    "createTime": "create_time",
    "modelVersion": "model_version",
    "usageMetadata": "usage_metadata",
    "finishReason": "finish_reason",
    "promptTokenCount": "prompt_token_count",
    "cachedContentTokenCount": "cached_content_token_count",
    "candidatesTokenCount": "candidates_token_count",
    "thoughtsTokenCount": "thoughts_token_count",
    "toolUsePromptTokenCount": "tool_use_prompt_token_count",
}


class GeminiUsage(base.Adapter):
    name = "gemini_usage"
    description = "Gemini / Vertex AI GenerateContentResponse usageMetadata records (JSONL or JSON)"
    basis = base.Basis.TELEMETRY
    joinable_lines = True

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        # Streams still open, least recently updated first; bounded so memory never grows with the file.
        unfinished: dict[str, tuple[int, Any, str]] = {}
        for line, record, raw in iter_json_records(stream):
            if isinstance(record, RowError):
                yield RowError(file_name, line, record.field, record.reason, raw)
                continue
            if isinstance(record, dict) and _is_unfinished_chunk(record):
                response_id = base.text(_get(record, "responseId"))
                if response_id:
                    unfinished.pop(response_id, None)
                    unfinished[response_id] = (line, record, raw)
                    if len(unfinished) > OPEN_STREAMS_LIMIT:
                        oldest = next(iter(unfinished))
                        yield _row_or_error(*unfinished.pop(oldest), file_name)
                    continue
            elif isinstance(record, dict):
                unfinished.pop(base.text(_get(record, "responseId")) or "", None)
            yield _row_or_error(record, line, raw, file_name)
        for line, record, raw in sorted(unfinished.values(), key=lambda item: item[0]):
            yield _row_or_error(record, line, raw, file_name)


def _get(record: dict, name: str) -> Any:
    value = record.get(name)
    return record.get(SNAKE[name]) if value is None else value


def _is_unfinished_chunk(record: dict) -> bool:
    candidates = record.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return False  # a final response, or a blocked prompt (no candidates)
    return not any(isinstance(c, dict) and _get(c, "finishReason") for c in candidates)


def _row_or_error(record: Any, line: int, raw: str, file_name: str) -> NormalisedRow | RowError:
    try:
        return _row(record, line)
    except RowInvalid as error:
        return RowError(file_name, line, error.field, error.reason, raw)


def _row(record: Any, line: int) -> NormalisedRow:
    if not isinstance(record, dict):
        raise RowInvalid("(record)", f"expected an object, got {type(record).__name__}")
    snake = "usage_metadata" in record and "usageMetadata" not in record

    def spelled(name: str) -> str:
        return SNAKE[name] if snake else name

    response_id = base.require_text(_get(record, "responseId"), spelled("responseId"))
    if len(response_id) > MAX_KEY_LENGTH:
        raise RowInvalid(spelled("responseId"), f"longer than {MAX_KEY_LENGTH} characters")
    when = _get(record, "createTime")
    if when is None and record.get("timestamp") is not None:
        when = record["timestamp"]  # Gemini API responses have no createTime; loggers add their own
    ts = base.timestamp(when, spelled("createTime"))
    model = base.require_text(_get(record, "modelVersion"), spelled("modelVersion"))
    usage = _get(record, "usageMetadata")
    if not isinstance(usage, dict):
        reason = "is missing" if usage is None else f"expected an object, got {type(usage).__name__}"
        raise RowInvalid(spelled("usageMetadata"), reason)

    def count(name: str) -> int:
        return base.tokens(_get(usage, name), f"{spelled('usageMetadata')}.{spelled(name)}")

    prompt = count("promptTokenCount")
    cached = count("cachedContentTokenCount")
    candidates = count("candidatesTokenCount")
    thoughts = count("thoughtsTokenCount")
    tool_prompt = count("toolUsePromptTokenCount")
    if cached > prompt:
        raise RowInvalid(
            f"{spelled('usageMetadata')}.{spelled('promptTokenCount')}",
            f"{prompt} is less than its cached part {spelled('cachedContentTokenCount')} ({cached})",
        )
    labels = record.get("labels")
    identity: dict[str, str] = {}
    if isinstance(labels, dict):
        for key, value in labels.items():
            kind, text = str(key).strip().lower(), base.text(value)
            if kind and text:
                identity["tag" if kind == "task" else kind] = text
    return NormalisedRow(
        ts=ts,
        grain=Grain.REQUEST,
        record_key=response_id,
        provider="google",
        model=model,
        line=line,
        input_uncached_tokens=base.tokens(prompt - cached + tool_prompt, spelled("toolUsePromptTokenCount")),
        cache_read_tokens=cached,
        output_tokens=base.tokens(candidates + thoughts, spelled("thoughtsTokenCount")),
        reasoning_tokens=thoughts,
        requests=1,
        identity=identity,
    )
