"""A generic usage CSV whose header names the canonical columns (docs/formats/csv.md), or their aliases.

One row per request, or per day when the timestamp is a date. The header decides everything: a column
the mapping does not know, two columns for the same field, or a missing required column rejects the
whole file with a message naming them, never a silent mis-map. Token columns follow the ledger's own
semantics (input_tokens EXCLUDES cached tokens; output_tokens INCLUDES reasoning).

Also home of `CsvReader`, the streaming CSV reader the CSV-based adapters share: BOM, CRLF, quoted
newlines and `;`/tab/`|` delimiters; each row carries the file line it starts on.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import itertools
import re
from collections.abc import Iterator
from typing import IO

import orjson

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.usage.models import Grain

_DELIMITERS = (",", ";", "\t", "|")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


class CsvReader:
    """Reads the header on construction; `rows()` then yields (line, values) or a RowError per row.

    Lines are the file's physical lines (the header is line 1), so a record with a quoted newline
    is reported at the line it starts on. Memory is bounded by one record.
    """

    def __init__(self, stream: IO[bytes], file_name: str) -> None:
        self.file_name = file_name
        # surrogateescape: a row with bytes that are not UTF-8 is rejected alone, not the whole file.
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        first = text.readline()
        self.delimiter = max(_DELIMITERS, key=first.count) if first.strip() else ","
        self._reader = csv.reader(itertools.chain([first], text), delimiter=self.delimiter)
        try:
            self.header = next(self._reader, [])
        except csv.Error as error:
            raise ValueError(f"{file_name}: the CSV header cannot be read: {error}") from None
        self.header_line = self._reader.line_num

    def rows(self) -> Iterator[tuple[int, list[str] | RowError]]:
        previous = self.header_line
        while True:
            try:
                values = next(self._reader)
            except StopIteration:
                return
            except csv.Error as error:
                start = previous + 1
                if self._reader.line_num == previous:
                    return  # no progress: nothing more can be read
                previous = self._reader.line_num
                yield start, RowError(self.file_name, start, "(line)", f"not readable as CSV: {error}", "")
                continue
            start, previous = previous + 1, self._reader.line_num
            if not values or (len(values) == 1 and not values[0].strip()):
                continue  # a blank line
            if any(_UNDECODABLE.search(value) for value in values):
                yield start, RowError(self.file_name, start, "(line)", "is not valid UTF-8", self.raw(values))
                continue
            if len(values) > len(self.header):
                reason = f"has {len(values)} values but the header has {len(self.header)} columns"
                yield start, RowError(self.file_name, start, "(line)", reason, self.raw(values))
                continue
            yield start, values + [""] * (len(self.header) - len(values))

    def raw(self, values: list[str]) -> str:
        """The row as one CSV line in the file's own delimiter, for the rejected-rows download."""
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.delimiter, lineterminator="").writerow(values)
        return buffer.getvalue().encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# canonical column -> accepted aliases (compared after lower-casing and turning spaces, dots and hyphens
# into underscores). `prompt_tokens` is deliberately not an alias of input_tokens: most tools count
# cached tokens inside it, and input_tokens here must exclude them.
COLUMNS: dict[str, tuple[str, ...]] = {
    "timestamp": ("ts", "time", "date", "datetime", "created_at", "start_time"),
    "provider": ("vendor",),
    "model": ("model_name", "model_id"),
    "input_tokens": ("uncached_input_tokens", "input_uncached_tokens"),
    "cache_read_tokens": ("cached_tokens", "cached_input_tokens", "cache_read_input_tokens"),
    "cache_write_tokens": ("cache_write_5m_tokens", "cache_creation_tokens", "cache_creation_input_tokens"),
    "cache_write_1h_tokens": (),
    "output_tokens": ("completion_tokens",),
    "reasoning_tokens": ("thinking_tokens",),
    "requests": ("request_count", "num_requests"),
    "cost_usd": ("cost", "spend", "spend_usd", "amount_usd"),
    "request_id": ("id", "record_id"),
    "user": ("user_id", "email"),
    "team": ("team_id", "team_name"),
    "task": ("tag", "use_case"),
    "api_key": ("api_key_id", "key_id"),
    "project": ("project_id", "workspace", "workspace_id"),
    "failed": (),
    "batch": (),
    "service_tier": (),
}
REQUIRED = ("timestamp", "model")
_CANONICAL = {alias: name for name, aliases in COLUMNS.items() for alias in (name, *aliases)}
# canonical column -> identity kind the attribution resolver knows
_IDENTITY = {
    "user": "user",
    "api_key": "api_key",
    "project": "project",
    "team": "gateway_team",
    "task": "tag",
}
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNIX_SECONDS = re.compile(r"\d{9,11}(\.\d+)?")  # 1973..5138; shorter digit runs are ISO dates
_INTEGER = re.compile(r"-?\d+")
MAX_RECORD_KEY = 200  # UsageFact.record_key


def header_key(name: str) -> str:
    return re.sub(r"[\s.\-]+", "_", name.strip().lower())


def map_header(header: list[str], file_name: str) -> dict[str, int]:
    """canonical column -> position; raises ValueError naming every header problem at once."""
    positions: dict[str, int] = {}
    unknown, repeated = [], []
    for position, name in enumerate(header):
        canonical = _CANONICAL.get(header_key(name))
        if canonical is None:
            unknown.append(name)
        elif canonical in positions:
            repeated.append(f"{header[positions[canonical]]!r} and {name!r} both mean {canonical}")
        else:
            positions[canonical] = position
    problems = []
    if unknown:
        problems.append("unknown columns " + ", ".join(repr(name) for name in unknown))
    problems.extend(repeated)
    missing = [name for name in REQUIRED if name not in positions]
    if missing:
        problems.append("missing required columns " + ", ".join(missing))
    if problems:
        raise ValueError(f"{file_name}: line 1 (header): {'; '.join(problems)} (see docs/formats/csv.md)")
    return positions


class GenericCsv(base.Adapter):
    name = "csv"
    description = "Generic usage CSV with a documented header mapping (docs/formats/csv.md)"

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        reader = CsvReader(stream, file_name)
        positions = map_header(reader.header, file_name)
        spelled = {canonical: reader.header[position] for canonical, position in positions.items()}
        for line, values in reader.rows():
            if isinstance(values, RowError):
                yield values
                continue
            record = {canonical: values[position].strip() for canonical, position in positions.items()}
            try:
                yield _row(record, line)
            except RowInvalid as error:
                field = spelled.get(error.field, error.field)
                yield RowError(file_name, line, field, error.reason, reader.raw(values))


def _count(record: dict[str, str], column: str) -> int:
    value = record.get(column, "")
    if _INTEGER.fullmatch(value):
        return base.tokens(int(value), column)  # so that a negative count is called negative
    return base.tokens(value or None, column)


def _flag(record: dict[str, str], column: str) -> bool:
    value = record.get(column, "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RowInvalid(column, f"expected true or false, got {record[column]!r}")


def _when(value: str) -> tuple[dt.datetime, int]:
    """(UTC time, grain): a bare date is a day's total, anything finer is one request."""
    if not value:
        raise RowInvalid("timestamp", "is missing")
    if _DATE_ONLY.fullmatch(value):
        return base.timestamp(value, "timestamp"), Grain.DAY
    if _UNIX_SECONDS.fullmatch(value):
        return base.timestamp(float(value), "timestamp"), Grain.REQUEST
    return base.timestamp(value, "timestamp"), Grain.REQUEST


def _row(record: dict[str, str], line: int) -> NormalisedRow:
    ts, grain = _when(record["timestamp"])
    model = base.require_text(record["model"], "model")
    output = _count(record, "output_tokens")
    reasoning = _count(record, "reasoning_tokens")
    if reasoning > output:
        raise RowInvalid(
            "reasoning_tokens", f"{reasoning} is more than output_tokens ({output}), which include it"
        )
    if record.get("requests"):
        requests: int | None = _count(record, "requests")
    else:
        requests = 1 if grain == Grain.REQUEST else None  # a day's total without a count: unknown
    identity = {kind: record[column] for column, kind in _IDENTITY.items() if record.get(column)}
    row = NormalisedRow(
        ts=ts,
        grain=grain,
        record_key="",
        provider=record.get("provider", ""),
        model=model,
        line=line,
        input_uncached_tokens=_count(record, "input_tokens"),
        cache_read_tokens=_count(record, "cache_read_tokens"),
        cache_write_5m_tokens=_count(record, "cache_write_tokens"),
        cache_write_1h_tokens=_count(record, "cache_write_1h_tokens"),
        output_tokens=output,
        reasoning_tokens=reasoning,
        requests=requests,
        failed=_flag(record, "failed"),
        batch=_flag(record, "batch"),
        service_tier=record.get("service_tier") or None,
        reported_cost_nanos=base.usd_to_nanos(record.get("cost_usd"), "cost_usd"),
        identity=identity,
    )
    row.record_key = _record_key(record.get("request_id", ""), row)
    return row


def _record_key(request_id: str, row: NormalisedRow) -> str:
    if request_id:
        if len(request_id) <= MAX_RECORD_KEY:
            return request_id
        return "id-" + hashlib.blake2b(request_id.encode(), digest_size=16).hexdigest()
    # Without an id, a row's only identity that survives a re-export is its content, so the key is a
    # hash of its canonical values (not of the line's text: column order, quoting and number format
    # do not change it). Re-ingesting the file or an overlapping export then adds nothing; the price
    # is that two truly identical rows count once, so files where that can happen need a request_id.
    content = orjson.dumps(
        [
            row.ts.isoformat(),
            row.grain,
            row.provider,
            row.model,
            row.input_uncached_tokens,
            row.cache_read_tokens,
            row.cache_write_5m_tokens,
            row.cache_write_1h_tokens,
            row.output_tokens,
            row.reasoning_tokens,
            row.requests,
            row.failed,
            row.batch,
            row.service_tier,
            row.reported_cost_nanos,
            sorted(row.identity.items()),
        ]
    )
    return "row-" + hashlib.blake2b(content, digest_size=16).hexdigest()
