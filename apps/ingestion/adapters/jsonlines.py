"""Streaming JSON record readers shared by adapters: JSONL line by line, or one JSON document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import orjson
from django.conf import settings

from apps.ingestion.adapters.base import RowError


def iter_json_records(
    stream: IO[bytes], *, envelope_key: str | None = None
) -> Iterator[tuple[int, Any, str]]:
    """Yield (line, record, raw) from JSONL (one object per line) or from a single JSON document.

    A document that is an array, or an object holding an array under `envelope_key`, yields its items
    numbered from 1 (the "line" of an item in a JSON document is its position). A JSONL line that
    cannot be parsed yields a RowError in place of the record; memory stays bounded by one line.
    """
    first = _peek_first_byte(stream)
    if first == b"[":
        yield from _document_records(stream.read(), envelope_key)
        return
    max_line = settings.SPENDWATCH_MAX_LINE_BYTES
    for number, line in enumerate(stream, start=1):
        if number == 1 and first == b"{" and not line.rstrip().endswith(b"}"):
            # A pretty-printed single object (an API page), not JSONL.
            yield from _document_records(line + stream.read(), envelope_key)
            return
        parsed = read_json_line(number, line, max_line)
        if parsed is None:
            continue
        record, raw = parsed
        if number == 1 and envelope_key and isinstance(record, dict) and envelope_key in record:
            yield from _items(record[envelope_key])
            yield from _document_tail(stream)
            return
        yield number, record, raw


def read_json_line(number: int, line: bytes, max_line: int) -> tuple[Any, str] | None:
    """One JSONL line -> (record or RowError, raw text); None for a blank line."""
    if len(line) > max_line:
        return RowError("", number, "(line)", f"line longer than {max_line} bytes", ""), ""
    stripped = line.strip()
    if not stripped:
        return None
    raw = stripped.decode("utf-8", errors="replace")
    try:
        return orjson.loads(stripped), raw
    except orjson.JSONDecodeError as error:
        return RowError("", number, "(line)", f"invalid JSON: {error}", raw), raw


def _document_tail(stream: IO[bytes]) -> Iterator[tuple[int, Any, str]]:
    rest = stream.read().strip()
    if rest:
        yield 2, RowError("", 2, "(document)", "unexpected content after the JSON document", ""), ""


def _peek_first_byte(stream: IO[bytes]) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is not None:
        head = peek(64).lstrip()
        return head[:1]
    position = stream.tell()
    head = stream.read(64).lstrip()
    stream.seek(position)
    return head[:1]


def _document_records(data: bytes, envelope_key: str | None) -> Iterator[tuple[int, Any, str]]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        yield 1, RowError("", 1, "(document)", f"invalid JSON: {error}", ""), ""
        return
    if isinstance(document, dict) and envelope_key and isinstance(document.get(envelope_key), list):
        document = document[envelope_key]
    if isinstance(document, dict):
        document = [document]
    yield from _items(document)


def _items(items: Any) -> Iterator[tuple[int, Any, str]]:
    if not isinstance(items, list):
        yield 1, RowError("", 1, "(document)", "expected a list of records", ""), ""
        return
    for position, item in enumerate(items, start=1):
        yield position, item, orjson.dumps(item).decode()
