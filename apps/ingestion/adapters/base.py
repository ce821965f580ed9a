"""The adapter contract: turn one source format into normalised rows or row errors, nothing else.

Adapters never touch the database, never price and never attribute; the pipeline does that for every
source alike. Each yielded item is either a `NormalisedRow` or a `RowError` naming file, line and field.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO, Any, ClassVar

import orjson

from apps.usage.models import Grain

MAX_TOKENS = 2**63 - 1
NANOS = Decimal(1_000_000_000)


@dataclass(slots=True)
class NormalisedRow:
    ts: dt.datetime  # UTC, aware
    grain: int
    record_key: str
    provider: str  # raw provider as the source names it; normalised by the catalog
    model: str
    line: int  # where the row came from, for messages about it
    input_uncached_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int | None = None
    failed: bool = False
    batch: bool = False
    service_tier: str | None = None
    reported_cost_nanos: int | None = None
    identity: dict[str, str] = field(default_factory=dict)
    # The request's last user message, where the source carries prompts; never stored with the fact.
    prompt: str | None = None


@dataclass(slots=True)
class RowError:
    file: str
    line: int
    field: str
    reason: str
    raw: str

    def message(self) -> str:
        return f"{self.file}, line {self.line}, field {self.field}: {self.reason}"


class RowInvalid(Exception):
    """Raised inside an adapter while reading one record; the adapter turns it into a RowError."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Basis:
    """What a source's numbers are, which decides how its cost is read and how it reconciles."""

    BILLING = "billing"  # the provider's invoice lines: the amount is the cost, tokens only inform
    USAGE = "usage"  # the provider's own usage report: tokens are exact, we price them
    TELEMETRY = "telemetry"  # per-request logs from a gateway or SDK: detail for attribution


class Adapter:
    name: ClassVar[str]
    description: ClassVar[str]
    basis: ClassVar[str] = Basis.TELEMETRY
    # True when a body of JSON lines is a list of independent records, so that bodies written one after
    # another read as the union of their rows: the ingest buffer then joins small pushed bodies into one
    # file (apps/ingestion/buffer.py).
    joinable_lines: ClassVar[bool] = False
    # A first line that is an object holding this key is an envelope of records (an API page), not a
    # record: such a body cannot be joined after another.
    envelope_key: ClassVar[str | None] = None

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        raise NotImplementedError

    def parse_columns(self, stream: IO[bytes], file_name: str) -> Iterator[Any] | None:
        """An optional fast reader for the common shape of a big file: yields normalised Arrow tables
        (apps/ingestion/frames.py), and rows or errors for what it leaves to `parse`'s logic, all in
        line order. None (the default) means: use `parse`. It must give exactly what `parse` gives.
        """
        return None


# --- helpers shared by adapters: strict readers that raise RowInvalid naming the field ----------------


def tokens(value: object, field: str) -> int:
    """A token count: a non-negative integer up to 2**63-1 (JSON number, integral float or digit string)."""
    if value.__class__ is int and 0 <= value <= MAX_TOKENS:  # type: ignore[operator]  # the common case, first
        return value  # type: ignore[return-value]
    if value is None:
        return 0
    if isinstance(value, bool):
        raise RowInvalid(field, f"expected a token count, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise RowInvalid(field, f"expected a token count, got {value!r}")
    if number < 0:
        raise RowInvalid(field, f"token count is negative ({number})")
    if number > MAX_TOKENS:
        raise RowInvalid(field, f"token count {number} does not fit in 64 bits")
    return number


def optional_count(value: object, field: str) -> int | None:
    return None if value is None else tokens(value, field)


def usd_to_nanos(value: object, field: str) -> int | None:
    """Dollars (number or decimal string, any exponent) to integer nano-dollars, rounded half-even.

    Floats go through their shortest repr, which is the decimal the source wrote for up to 15
    significant digits; strings are read exactly. An amount beyond 64 bits of nano-dollars is refused.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RowInvalid(field, f"expected an amount, got {value!r}")
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise RowInvalid(field, f"expected an amount, got {value!r}") from None
    if not amount.is_finite():
        raise RowInvalid(field, f"expected a finite amount, got {value!r}")
    # Checked before scaling: an exponent like 1E+999999 would overflow the decimal context itself.
    nanos = int((amount * NANOS).to_integral_value()) if amount.adjusted() < 19 else 2**63
    if not -(2**63) <= nanos < 2**63:
        raise RowInvalid(field, f"{value!r} dollars does not fit in 64 bits of nano-dollars")
    return nanos


def cents_to_nanos(value: object, field: str) -> int | None:
    """Cents (number or decimal string, any exponent) to integer nano-dollars, rounded half-even.

    Read like usd_to_nanos; moving the decimal point two places is exact, so no float division and
    no lost fraction of a cent. An amount beyond 64 bits of nano-dollars is refused, not stored.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RowInvalid(field, f"expected an amount in cents, got {value!r}")
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise RowInvalid(field, f"expected an amount in cents, got {value!r}") from None
    if not amount.is_finite():
        raise RowInvalid(field, f"expected a finite amount, got {value!r}")
    # Checked before scaling: an exponent like 1E+999999 would overflow the decimal context itself.
    nanos = int((amount * NANOS).scaleb(-2).to_integral_value()) if amount.adjusted() < 19 else 2**63
    if not -(2**63) <= nanos < 2**63:
        raise RowInvalid(field, f"{value!r} cents does not fit in 64 bits of nano-dollars")
    return nanos


def timestamp(value: object, field: str) -> dt.datetime:
    """ISO 8601 (with offset, 'Z' or naive = UTC) or unix seconds, to an aware UTC datetime."""
    if isinstance(value, bool) or value is None or value == "":
        raise RowInvalid(field, f"expected a timestamp, got {value!r}")
    try:
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, tz=dt.UTC)
        parsed = dt.datetime.fromisoformat(str(value).strip())
    except (ValueError, OverflowError, OSError):
        raise RowInvalid(field, f"not a timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def text(value: object) -> str | None:
    if value.__class__ is str:
        return value.strip() or None  # type: ignore[attr-defined]
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def require_text(value: object, field: str) -> str:
    result = text(value)
    if result is None:
        raise RowInvalid(field, "is missing")
    return result


_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


def csv_text(stream: IO[bytes]) -> io.TextIOWrapper:
    """A CSV file's bytes as text. Bytes that are not UTF-8 survive as surrogates, so `csv_records`
    rejects their row alone instead of the decoder failing the whole file."""
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")


def csv_records(reader: Any) -> Iterator[tuple[int, Any]]:
    """(first physical line, record) for each record of a csv.reader or csv.DictReader over `csv_text`.

    A record that cannot be read (a field over the csv module's size limit, bytes that are not UTF-8)
    comes as a RowInvalid for its line instead; a reader that stops making progress ends the file.
    """
    previous = reader.line_num
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if reader.line_num == previous:
                return
            start, previous = previous + 1, reader.line_num
            yield start, RowInvalid("(line)", f"not readable as CSV: {error}")
            continue
        start, previous = previous + 1, reader.line_num
        cells = record.values() if isinstance(record, dict) else record
        flat = [cell for value in cells for cell in (value if isinstance(value, list) else [value])]
        if any(isinstance(cell, str) and _UNDECODABLE.search(cell) for cell in flat):
            yield start, RowInvalid("(line)", "is not valid UTF-8")
            continue
        yield start, record


def csv_header(reader: Any, file_name: str) -> list[str]:
    """The header of a csv.reader (read now) or csv.DictReader; an unreadable one fails the file."""
    try:
        if isinstance(reader, csv.DictReader):
            return list(reader.fieldnames or [])
        return next(reader, None) or []
    except csv.Error as error:
        raise ValueError(f"{file_name}: the CSV header cannot be read: {error}") from None


PROMPT_CHARS = 4_000  # enough to classify a request; longer prompts are cut here, before anything keeps them


def last_user_message(messages: object) -> str | None:
    """The text of the last user message of an OpenAI/Anthropic-style message list (string or parts).

    A list serialised as a JSON string (a CSV dump's cell) is read too.
    """
    if isinstance(messages, str) and messages.lstrip().startswith("["):
        try:
            messages = orjson.loads(messages)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
        if isinstance(content, str) and content.strip():
            return content[:PROMPT_CHARS]
        return None
    return None


GRAIN_BY_WIDTH = {"1m": Grain.MINUTE, "1h": Grain.HOUR, "1d": Grain.DAY}
