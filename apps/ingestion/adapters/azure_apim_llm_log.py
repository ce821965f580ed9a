"""Azure API Management GenAI gateway log, table `ApiManagementGatewayLlmLog` (FORMATS.md §4.3).

Accepted as the `az monitor log-analytics query` output (a JSON array whose values are all strings),
JSON/JSONL with typed values, the Log Analytics query API answer (`{"tables": [{"columns", "rows"}]}`)
or the portal's CSV export (`TimeGenerated [UTC]` headers).

One request can span several records: the token counts are on `SequenceNumber` 0, later sequence
numbers carry chunks of the prompt or response with empty token fields. Only the record holding the
counts becomes a row, keyed `CorrelationId:SequenceNumber`; chunk records are skipped, so a request is
counted once however many chunks it logged. A chunk record that carries tokens is rejected rather than
guessed at. There is no cached-token column: `PromptTokens` is all uncached input as far as the log
can tell. `ModelName` is the model that served the request (`DeploymentName` may be a router).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.ingestion.adapters.jsonlines import iter_json_records
from apps.usage.models import Grain

TABLE = "ApiManagementGatewayLlmLog"
MAX_KEY_LENGTH = 180  # the ledger keeps keys up to 200 characters; ours adds ":<SequenceNumber>"
REQUIRED_CSV_COLUMNS = ("TimeGenerated", "CorrelationId")
PORTAL_TIME = "%m/%d/%Y, %I:%M:%S.%f %p"


class AzureApimLlmLog(base.Adapter):
    name = "azure_apim_llm_log"
    description = "Azure API Management LLM gateway log (ApiManagementGatewayLlmLog; JSON, JSONL or CSV)"
    basis = base.Basis.TELEMETRY
    joinable_lines = True

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        if file_name.lower().endswith(".csv") or _first_byte(stream) not in (b"[", b"{", b""):
            records: Iterable[tuple[int, Any, str]] = _csv_records(stream, file_name)
        else:
            records = _json_records(stream)
        for line, record, raw in records:
            if isinstance(record, RowError):
                yield RowError(file_name, line, record.field, record.reason, raw)
                continue
            try:
                row = _row(record, line)
            except RowInvalid as error:
                yield RowError(file_name, line, error.field, error.reason, raw)
                continue
            if row is not None:
                yield row


def _first_byte(stream: IO[bytes]) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return peek(64).lstrip()[:1]
    position = stream.tell()
    head = stream.read(64).lstrip()[:1]
    stream.seek(position)
    return head


def _json_records(stream: IO[bytes]) -> Iterator[tuple[int, Any, str]]:
    for line, record, raw in iter_json_records(stream):
        if isinstance(record, dict) and isinstance(record.get("tables"), list):
            yield from _query_api_rows(record["tables"])
        else:
            yield line, record, raw


def _query_api_rows(tables: list) -> Iterator[tuple[int, Any, str]]:
    """The Log Analytics query API answer: columns once, rows as lists; a row's line is its position."""
    position = 0
    for table in tables:
        columns = _column_names(table)
        if columns is None:
            position += 1
            yield position, RowError("", position, "tables", "expected a table with columns and rows", ""), ""
            continue
        for values in table["rows"]:
            position += 1
            if not isinstance(values, list) or len(values) != len(columns):
                yield position, RowError("", position, "rows", "expected one value per column", ""), ""
                continue
            record = dict(zip(columns, values, strict=True))
            yield position, record, orjson.dumps(record).decode()


def _column_names(table: Any) -> list[str] | None:
    if not isinstance(table, dict) or not isinstance(table.get("rows"), list):
        return None
    columns = table.get("columns")
    if not isinstance(columns, list):
        return None
    names = [column.get("name") if isinstance(column, dict) else None for column in columns]
    return names if all(isinstance(name, str) for name in names) else None


def _csv_records(stream: IO[bytes], file_name: str) -> Iterator[tuple[int, Any, str]]:
    reader = csv.reader(base.csv_text(stream))
    header = base.csv_header(reader, file_name)
    # The portal names time columns with their zone: `TimeGenerated [UTC]`.
    columns = [name.replace("[UTC]", "").strip() for name in header]
    missing = [name for name in REQUIRED_CSV_COLUMNS if name not in columns]
    if missing:
        raise ValueError(f"{file_name}: the CSV header has no {', '.join(missing)} column (got {header!r})")
    for start, values in base.csv_records(reader):
        if isinstance(values, RowInvalid):
            yield start, RowError("", start, values.field, values.reason, ""), ""
            continue
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(values)
        if len(values) != len(columns):
            reason = f"expected {len(columns)} columns, got {len(values)}"
            yield start, RowError("", start, "(line)", reason, ""), out.getvalue()
            continue
        yield start, dict(zip(columns, values, strict=True)), out.getvalue()


def _time_generated(value: Any) -> dt.datetime:
    """ISO 8601 (JSON, CLI) or the portal CSV's `8/5/2026, 11:00:00.123 AM` (UTC, as its header says)."""
    if isinstance(value, str) and "," in value:
        try:
            parsed = dt.datetime.strptime(value.strip(), PORTAL_TIME)  # noqa: DTZ007 - UTC per the header
        except ValueError:
            raise RowInvalid("TimeGenerated", f"not a timestamp: {value!r}") from None
        return parsed.replace(tzinfo=dt.UTC)
    return base.timestamp(value, "TimeGenerated")


def _count(record: dict, field: str) -> int:
    value = record.get(field)
    return 0 if value == "" else base.tokens(value, field)


def _row(record: Any, line: int) -> NormalisedRow | None:
    if not isinstance(record, dict):
        raise RowInvalid("(record)", f"expected an object, got {type(record).__name__}")
    table = base.text(record.get("Type"))
    if table is not None and table != TABLE:
        raise RowInvalid("Type", f"unsupported table {table!r} (expected {TABLE})")
    correlation_id = base.require_text(record.get("CorrelationId"), "CorrelationId")
    if len(correlation_id) > MAX_KEY_LENGTH:
        raise RowInvalid("CorrelationId", f"longer than {MAX_KEY_LENGTH} characters")
    ts = _time_generated(record.get("TimeGenerated"))
    sequence = _count(record, "SequenceNumber")
    prompt = _count(record, "PromptTokens")
    completion = _count(record, "CompletionTokens")
    if sequence > 0:
        if prompt or completion:
            raise RowInvalid(
                "SequenceNumber",
                f"record {sequence} of request {correlation_id} carries tokens; only record 0 may",
            )
        return None  # a chunk of the prompt or response, already counted on record 0
    model = base.text(record.get("ModelName")) or base.text(record.get("DeploymentName"))
    if model is None:
        raise RowInvalid("ModelName", "is missing (and so is DeploymentName)")
    identity = {
        "deployment": base.text(record.get("DeploymentName")),
        # Present when the query joined ApiManagementGatewayLogs on CorrelationId.
        "api_key": base.text(record.get("ApimSubscriptionId")),
    }
    return NormalisedRow(
        ts=ts,
        grain=Grain.REQUEST,
        record_key=f"{correlation_id}:{sequence}",
        provider="azure",
        model=model,
        line=line,
        input_uncached_tokens=prompt,
        output_tokens=completion,
        requests=1,
        identity={kind: value for kind, value in identity.items() if value},
    )
