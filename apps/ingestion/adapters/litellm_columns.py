"""A columnar reader for LiteLLM spend-log JSONL: the common shape of a big file, read by Arrow.

Arrow's JSON reader parses a piece of the file (a few MB of whole lines) against an explicit schema
of the fields we read, and the normalisation runs on columns. Arrow is strict: a piece where any value
has another type than the schema's (a number as a string, a truncated line) fails as a whole, and is
split in halves until the pieces parse; a small piece that still fails, and every row the column code
does not take on (a timestamp in another form, a negative count, a cost that sits on a rounding
boundary...), goes through the adapter's own row logic. So the rows and errors are exactly what
`LiteLLMSpendLogs.parse` gives; only the common rows take the fast way (tests compare the two).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from django.conf import settings

from apps.ingestion.adapters import base, litellm_spend_logs
from apps.ingestion.adapters.base import NormalisedRow, RowError
from apps.ingestion.adapters.jsonlines import read_json_line
from apps.ingestion.frames import NORMALISED, TIMESTAMP, identity_text, rows_to_table
from apps.usage.models import Grain

PIECE_BYTES = 1 << 20
# Below this many lines a piece Arrow cannot parse goes line by line instead of being split again.
SMALLEST_PIECE = 256
DERIVED_CACHE_LIMIT = 100_000

_TEXT = pa.string()
_COUNT = pa.int64()
_USAGE = pa.struct(
    [
        ("prompt_tokens_details", pa.struct([("cached_tokens", _COUNT)])),
        ("completion_tokens_details", pa.struct([("reasoning_tokens", _COUNT)])),
        ("cache_read_input_tokens", _COUNT),
        ("cache_creation_input_tokens", _COUNT),
        ("cache_creation", pa.struct([("ephemeral_1h_input_tokens", _COUNT)])),
    ]
)
_METADATA = pa.struct(
    [
        ("user_api_key_user_id", _TEXT),
        ("user_api_key", _TEXT),
        ("user_api_key_alias", _TEXT),
        ("user_api_key_team_id", _TEXT),
        ("user_api_key_team_alias", _TEXT),
        ("status", _TEXT),
        ("spend_logs_metadata", pa.struct([("task", _TEXT)])),
        ("usage_object", _USAGE),
    ]
)
SCHEMA = pa.schema(
    [
        ("request_id", _TEXT),
        ("startTime", _TEXT),
        ("model", _TEXT),
        ("model_group", _TEXT),
        ("custom_llm_provider", _TEXT),
        ("api_key", _TEXT),
        ("user", _TEXT),
        ("team_id", _TEXT),
        ("end_user", _TEXT),
        ("spend", pa.float64()),
        ("prompt_tokens", _COUNT),
        ("completion_tokens", _COUNT),
        ("status", _TEXT),
        ("cache_hit", _TEXT),
        ("request_tags", pa.list_(_TEXT)),
        ("metadata", _METADATA),
    ]
)
_PARSE = pa_json.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")
# The one timestamp form taken by column: what LiteLLM writes (offset or Z, up to microseconds).
_ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
# Separators for joining a row's text fields into one key; a value holding one goes the row way.
_FIELD_SEP, _LIST_SEP, _NULL = "\x1f", "\x1e", "\x00"

Piece = tuple[pa.Table, list[RowError]]


def read_columns(stream: IO[bytes], file_name: str) -> Iterator[Piece] | None:
    """Pieces of (normalised table, row errors) in line order; None when the file is not plain JSONL."""
    if not stream.seekable():
        return None
    first = stream.readline(settings.SPENDWATCH_MAX_LINE_BYTES + 1).strip()
    stream.seek(0)
    if not first.startswith(b"{") or not first.endswith(b"}"):
        return None  # a JSON document (array, envelope or pretty-printed): the row reader handles it
    try:
        record = orjson.loads(first)
    except orjson.JSONDecodeError:
        record = None
    if isinstance(record, dict) and "data" in record:
        return None
    return _pieces(stream, file_name)


def _pieces(stream: IO[bytes], file_name: str) -> Iterator[Piece]:
    reader = _PieceReader(file_name)
    first_line = 1
    rest = b""
    while True:
        data = stream.read(PIECE_BYTES)
        if not data:
            if rest:
                yield from reader.read(rest, first_line)
            return
        buffer = rest + data
        cut = buffer.rfind(b"\n")
        if cut < 0:
            rest = buffer
            continue
        piece, rest = buffer[: cut + 1], buffer[cut + 1 :]
        yield from reader.read(piece, first_line)
        first_line += piece.count(b"\n")


class _PieceReader:
    def __init__(self, file_name: str) -> None:
        self.file_name = file_name
        self.max_line = settings.SPENDWATCH_MAX_LINE_BYTES
        # Derived values by joined key, kept across pieces: a file repeats its few thousand keys.
        self.derived: dict[tuple, Any] = {}

    def read(self, piece: bytes, first_line: int) -> Iterator[Piece]:
        lines = piece.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        if (
            b"\r" in piece
            or max(map(len, lines), default=0) > self.max_line
            or not all(map(bytes.strip, lines))
        ):
            # Blank lines (Arrow skips them, so positions would shift), CRLF and over-long lines.
            yield self._by_row(lines, first_line, range(len(lines)))
            return
        try:
            if not piece.isascii():
                # Arrow's JSON reader lets bytes that are not UTF-8 into string columns unchecked; the row
                # reader rejects such a line, so the piece must not take the fast way.
                piece.decode("utf-8")
            table = pa_json.read_json(
                io.BytesIO(piece),
                read_options=pa_json.ReadOptions(use_threads=False, block_size=len(piece) + 1),
                parse_options=_PARSE,
            )
            if table.num_rows != len(lines):
                raise pa.ArrowInvalid("a line held more or less than one record")
            fast, by_row = _normalise(table, first_line, self.derived)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError):
            # A value of another type than the schema's, text that is not UTF-8, or an impossible
            # date somewhere in the piece: split it until the pieces read, the last ones row by row.
            if len(lines) <= SMALLEST_PIECE:
                yield self._by_row(lines, first_line, range(len(lines)))
                return
            middle = len(lines) // 2
            yield from self.read(b"\n".join(lines[:middle]) + b"\n", first_line)
            yield from self.read(b"\n".join(lines[middle:]) + b"\n", first_line + middle)
            return
        fast = _with_prompts(fast, lines, first_line)
        slow_rows, errors = self._rows(lines, first_line, by_row)
        if slow_rows:
            # In line order, so that "the first copy of a request stands" means the same as row by row.
            fast = pa.concat_tables([fast, rows_to_table(slow_rows)]).sort_by("line")
        yield fast, errors

    def _by_row(self, lines: list[bytes], first_line: int, indexes: range) -> Piece:
        rows, errors = self._rows(lines, first_line, indexes)
        return rows_to_table(rows), errors

    def _rows(
        self, lines: list[bytes], first_line: int, indexes
    ) -> tuple[list[NormalisedRow], list[RowError]]:
        rows: list[NormalisedRow] = []
        errors: list[RowError] = []
        for index in indexes:
            number = first_line + index
            parsed = read_json_line(number, lines[index], self.max_line)
            if parsed is None:
                continue
            item = litellm_spend_logs.read_record(parsed[0], number, parsed[1], self.file_name)
            (errors if isinstance(item, RowError) else rows).append(item)
        return rows, errors


def _normalise(table: pa.Table, first_line: int, derived: dict[tuple, Any]) -> tuple[pa.Table, list[int]]:
    """The rows the column code takes, normalised; and the indexes of those left to the row logic."""
    rows = table.num_rows
    metadata = table["metadata"]
    usage = pc.struct_field(metadata, "usage_object")
    slow = np.zeros(rows, dtype=bool)

    def flag(condition: pa.ChunkedArray | pa.Array) -> None:
        nonlocal slow
        slow |= pc.fill_null(condition, True).to_numpy(zero_copy_only=False)

    def count(values: Any) -> np.ndarray:
        filled = pc.fill_null(values, 0)
        flag(pc.less(filled, 0))
        return filled.to_numpy(zero_copy_only=False)

    request_id = table["request_id"]
    flag(pc.or_(pc.equal(request_id, ""), pc.not_equal(request_id, pc.utf8_trim_whitespace(request_id))))
    start = table["startTime"]
    timestamp_form = pc.match_substring_regex(start, _ISO_TIMESTAMP)
    flag(pc.invert(timestamp_form))
    ts = pc.cast(pc.if_else(pc.fill_null(timestamp_form, False), start, "1970-01-01T00:00:00Z"), TIMESTAMP)

    prompt = count(table["prompt_tokens"])
    completion = count(table["completion_tokens"])
    cache_read = count(
        pc.coalesce(
            pc.struct_field(usage, "cache_read_input_tokens"),
            pc.struct_field(pc.struct_field(usage, "prompt_tokens_details"), "cached_tokens"),
        )
    )
    cache_write_1h = count(
        pc.struct_field(pc.struct_field(usage, "cache_creation"), "ephemeral_1h_input_tokens")
    )
    cache_write = np.maximum(count(pc.struct_field(usage, "cache_creation_input_tokens")), cache_write_1h)
    reasoning = count(
        pc.struct_field(pc.struct_field(usage, "completion_tokens_details"), "reasoning_tokens")
    )
    uncached = prompt - cache_read - cache_write
    slow |= (uncached < 0) | (reasoning > completion)

    status = pc.coalesce(_text(table["status"]), _text(pc.struct_field(metadata, "status")), "success")
    flag(pc.invert(pc.is_in(status, pa.array(["success", "failure"]))))
    failed = pc.equal(status, "failure").to_numpy(zero_copy_only=False)
    cache_hit = pc.fill_null(pc.equal(pc.utf8_lower(table["cache_hit"]), "true"), False)
    cache_hit = cache_hit.to_numpy(zero_copy_only=False)

    reported, reported_known, ambiguous = _nanos(table["spend"])
    slow |= ambiguous

    dimension_index, dimensions = _per_distinct(
        [table["custom_llm_provider"], table["model"], table["model_group"]], _dimensions, derived
    )
    flag(dimension_index.is_null())
    models = pa.array([model for _, model in dimensions] or [""], _TEXT)
    flag(pc.equal(models.take(pc.fill_null(dimension_index, 0)), ""))

    tags = pc.binary_join(table["request_tags"], _LIST_SEP)
    flag(pc.and_(pc.is_valid(table["request_tags"]), pc.is_null(tags)))  # a null inside the list
    separators = pc.subtract(pc.list_value_length(table["request_tags"]), 1)
    flag(pc.and_(pc.greater(separators, 0), pc.not_equal(pc.count_substring(tags, _LIST_SEP), separators)))
    identity_index, identities = _per_distinct(
        [
            table["user"],
            table["api_key"],
            table["team_id"],
            table["end_user"],
            tags,
            pc.struct_field(metadata, "user_api_key_user_id"),
            pc.struct_field(metadata, "user_api_key"),
            pc.struct_field(metadata, "user_api_key_alias"),
            pc.struct_field(metadata, "user_api_key_team_id"),
            pc.struct_field(metadata, "user_api_key_team_alias"),
            pc.struct_field(pc.struct_field(metadata, "spend_logs_metadata"), "task"),
        ],
        _identity,
        derived,
    )
    flag(identity_index.is_null())

    keep = ~slow
    billable = keep & ~cache_hit

    def tokens(values: np.ndarray) -> pa.Array:
        # LiteLLM's own cache answered a cache hit: the provider was not called, nothing is billable.
        return pa.array(np.where(billable, values, 0)[keep], _COUNT)

    take = pa.array(np.nonzero(keep)[0])
    kept = int(keep.sum())
    fast = pa.table(
        {
            "line": pa.array(np.arange(first_line, first_line + rows)[keep], pa.int64()),
            "ts": ts.take(take),
            "grain": pa.repeat(pa.scalar(Grain.REQUEST, pa.int16()), kept),
            "record_key": request_id.take(take),
            "provider": pa.array([p for p, _ in dimensions] or [""], _TEXT).take(dimension_index.take(take)),
            "model": models.take(dimension_index.take(take)),
            "input_uncached_tokens": tokens(uncached),
            "cache_read_tokens": tokens(cache_read),
            "cache_write_5m_tokens": tokens(cache_write - cache_write_1h),
            "cache_write_1h_tokens": tokens(cache_write_1h),
            "output_tokens": tokens(completion),
            "reasoning_tokens": tokens(reasoning),
            "requests": pa.repeat(pa.scalar(1, pa.int64()), kept),
            "failed": pa.array(failed[keep]),
            "batch": pa.repeat(pa.scalar(False), kept),
            "service_tier": pa.nulls(kept, _TEXT),
            "reported_cost_nanos": pa.array(reported[keep], pa.int64(), mask=~reported_known[keep]),
            "identity": pa.array(identities or [""], _TEXT).take(identity_index.take(take)),
            "prompt": pa.nulls(kept, _TEXT),
        },
        schema=NORMALISED,
    )
    return fast, np.nonzero(slow)[0].tolist()


def _with_prompts(table: pa.Table, lines: list[bytes], first_line: int) -> pa.Table:
    """Fill the prompt column from the lines that carry messages (LiteLLM stores them only when told).

    Message lists vary in shape (string or multi-part content), so they are read by orjson, and only
    on the lines that have them; the schema leaves them out.
    """
    prompts: dict[int, str] = {}
    for index, line in enumerate(lines):
        if b'"messages"' in line and b'"messages":{}' not in line and b'"messages": {}' not in line:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # the row logic reports it
            prompt = base.last_user_message(record.get("messages")) if isinstance(record, dict) else None
            if prompt:
                prompts[first_line + index] = prompt
    if not prompts:
        return table
    column = pa.array([prompts.get(line) for line in table["line"].to_pylist()], _TEXT)
    return table.set_column(table.schema.get_field_index("prompt"), "prompt", column)


def _text(values: Any) -> pa.Array:
    """base.text by column: trimmed, and empty as null."""
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, _TEXT), trimmed)


def _nanos(spend: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dollars (float) to nano-dollars, equal to base.usd_to_nanos (Decimal of the float's repr,
    rounded half-even) wherever the float product is unambiguous; the rest is flagged for the row way.
    """
    known = pc.is_valid(spend).to_numpy(zero_copy_only=False)
    dollars = pc.fill_null(spend, 0.0).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = dollars * 1e9
        rounded = np.rint(scaled)
        # The float product is within a few ulps of the decimal one: only a product that sits within
        # 0.001 of a half (or is too large for exact float integers) could round the other way.
        ambiguous = ~np.isfinite(scaled) | (np.abs(scaled) >= 2.0**50) | (np.abs(scaled - rounded) > 0.499)
    ambiguous &= known
    nanos = np.where(ambiguous, 0, rounded).astype(np.int64)
    return nanos, known, ambiguous


def _per_distinct(
    columns: list[Any], derive: Callable[..., Any], derived: dict[tuple, Any]
) -> tuple[pa.Array, list]:
    """Run `derive(*values)` once per distinct combination of the columns' values.

    Returns each row's index into the results (null where a value holds a separator, so that row
    goes the row way) and the results.
    """
    joined = pc.binary_join_element_wise(
        *columns, _FIELD_SEP, null_handling="replace", null_replacement=_NULL
    )
    clean = pc.equal(pc.count_substring(joined, _FIELD_SEP), len(columns) - 1)
    for column in columns:
        clean = pc.and_(clean, pc.invert(pc.fill_null(pc.match_substring(column, _NULL), False)))
    encoded = pc.dictionary_encode(joined).combine_chunks()
    results = []
    for key in encoded.dictionary.to_pylist():
        cache_key = (derive, key)
        if cache_key not in derived:
            if len(derived) >= DERIVED_CACHE_LIMIT:
                derived.clear()  # memory stays bounded on a file whose every row is a new key
            values = [None if value == _NULL else value for value in key.split(_FIELD_SEP)]
            derived[cache_key] = derive(*values) if len(values) == len(columns) else None
        results.append(derived[cache_key])
    index = pc.if_else(clean, encoded.indices, pa.scalar(None, encoded.indices.type))
    # A derive() that answers None sends its rows the row way too.
    if any(result is None for result in results):
        failed = pa.array([result is None for result in results]).take(pc.fill_null(index, 0))
        index = pc.if_else(failed, pa.scalar(None, index.type), index)
    return index, results


def _dimensions(provider: str | None, model: str | None, model_group: str | None) -> tuple[str, str]:
    return base.text(provider) or "", base.text(model) or base.text(model_group) or ""


def _identity(
    user, api_key, team_id, end_user, tags, key_user, key, key_alias, key_team, key_team_alias, task
) -> str:
    record = {
        "user": user,
        "api_key": api_key,
        "team_id": team_id,
        "end_user": end_user,
        "request_tags": None if tags is None else (tags.split(_LIST_SEP) if tags else []),
    }
    metadata = {
        "user_api_key_user_id": key_user,
        "user_api_key": key,
        "user_api_key_alias": key_alias,
        "user_api_key_team_id": key_team,
        "user_api_key_team_alias": key_team_alias,
        "spend_logs_metadata": {"task": task},
    }
    return identity_text(litellm_spend_logs.identity(record, metadata))
