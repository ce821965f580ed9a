"""Anthropic Admin API Claude Code usage report (`/v1/organizations/usage_report/claude_code`), one page
per file or a list of pages. Each record is one actor's day; it becomes one row per entry of its
`model_breakdown`, keyed by date + actor + model.

Token semantics (FORMATS.md §2.3): `tokens.input` does not contain cache reads or writes, and
`tokens.cache_creation` does not split the 5-minute from the 1-hour cache; Claude Code writes with the
default 5-minute TTL, so that is where the writes go. `estimated_cost.amount` is in cents and is only
Anthropic's estimate: it is kept as the reported cost, while the cost is priced from the tokens.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import IO, Any

import orjson

from apps.ingestion.adapters import base
from apps.ingestion.adapters.anthropic_usage import checked_model, natural_key, nested
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.usage.models import Grain


class ClaudeCodeUsage(base.Adapter):
    name = "claude_code_usage"
    description = "Anthropic Admin API Claude Code usage report pages (per user and model, per day)"
    basis = base.Basis.USAGE

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        try:
            document = orjson.loads(stream.read())
        except orjson.JSONDecodeError as error:
            yield RowError(file_name, 1, "(document)", f"invalid JSON: {error}", "")
            return
        pages = document if isinstance(document, list) else [document]
        # One position per model entry (at least one per record), counted across the file, so every
        # row has its own line for messages and for resuming after a crash.
        position = 0
        for page in pages:
            if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                position += 1
                yield RowError(file_name, position, "data", "expected a report page with a data list", "")
                continue
            for record in page["data"]:
                entries = record.get("model_breakdown") if isinstance(record, dict) else None
                first = position + 1
                position += len(entries) if isinstance(entries, list) and entries else 1
                raw = orjson.dumps(record).decode()
                try:
                    rows = list(_rows(record, first))
                except RowInvalid as error:
                    yield RowError(file_name, first, error.field, error.reason, raw)
                    continue
                for line, row in rows:
                    if isinstance(row, RowInvalid):
                        yield RowError(file_name, line, row.field, row.reason, raw)
                    else:
                        yield row


def _day(value: object) -> dt.datetime:
    # Documented as a date, shown in the docs' own example as midnight UTC: both are the same day.
    moment = base.timestamp(value, "date")
    return dt.datetime.combine(moment.date(), dt.time(), tzinfo=dt.UTC)


def _actor(record: dict) -> tuple[str, str]:
    """(identity kind, value): a person by email address, or an API key by its name."""
    actor = nested(record, "actor")
    email = base.text(actor.get("email_address"))
    if email:
        # Addresses are matched without case, so a re-export that cases one differently is the same actor.
        return "email", email.lower()
    key_name = base.text(actor.get("api_key_name"))
    if key_name:
        return "api_key_alias", key_name
    raise RowInvalid("actor", "has neither email_address nor api_key_name")


def _rows(record: Any, first: int) -> Iterator[tuple[int, NormalisedRow | RowInvalid]]:
    """(line, row) per model entry; a bad entry comes back as its error, the record's others are kept."""
    if not isinstance(record, dict):
        raise RowInvalid("(record)", f"expected an object, got {type(record).__name__}")
    ts = _day(record.get("date"))
    kind, actor = _actor(record)
    entries = record.get("model_breakdown")
    if not isinstance(entries, list):
        raise RowInvalid("model_breakdown", "is missing" if entries is None else "expected a list")
    for index, entry in enumerate(entries):
        line = first + index
        try:
            yield line, _row(ts, kind, actor, entry, index, line)
        except RowInvalid as error:
            yield line, error


def _row(ts: dt.datetime, kind: str, actor: str, entry: Any, index: int, line: int) -> NormalisedRow:
    prefix = f"model_breakdown[{index}]"
    if not isinstance(entry, dict):
        raise RowInvalid(prefix, f"expected an object, got {type(entry).__name__}")
    model = checked_model(entry.get("model"), f"{prefix}.model")
    counts = entry.get("tokens")
    if not isinstance(counts, dict):
        raise RowInvalid(f"{prefix}.tokens", "is missing" if counts is None else "expected an object")
    cost = entry.get("estimated_cost")
    if cost is not None and not isinstance(cost, dict):
        raise RowInvalid(f"{prefix}.estimated_cost", f"expected an object, got {type(cost).__name__}")
    cost = cost or {}
    currency = base.text(cost.get("currency"))
    if currency is not None and currency.upper() != "USD":
        raise RowInvalid(f"{prefix}.estimated_cost.currency", f"only USD can be stored, got {currency!r}")

    def count(name: str) -> int:
        return base.tokens(counts.get(name), f"{prefix}.tokens.{name}")

    return NormalisedRow(
        ts=ts,
        grain=Grain.DAY,
        record_key=natural_key((kind, actor, model)),
        provider="anthropic",
        model=model,
        line=line,
        input_uncached_tokens=count("input"),
        cache_read_tokens=count("cache_read"),
        cache_write_5m_tokens=count("cache_creation"),
        output_tokens=count("output"),
        reported_cost_nanos=base.cents_to_nanos(cost.get("amount"), f"{prefix}.estimated_cost.amount"),
        identity={kind: actor},
    )
