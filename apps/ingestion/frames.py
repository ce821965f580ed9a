"""Normalised rows as Arrow tables: the form a batch takes between the adapter and the ledger.

Every adapter's rows end up in one `NORMALISED` table per batch, so attribution, pricing and storage
run once per batch over columns (C loops in Arrow and NumPy) instead of once per row in Python.
Adapters that only yield `NormalisedRow`s are converted here; an adapter may also yield ready tables
from a columnar reader of its own (see `Adapter.parse_columns`).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pyarrow as pa

from apps.ingestion.adapters.base import NormalisedRow

TIMESTAMP = pa.timestamp("us", tz="UTC")

NORMALISED = pa.schema(
    [
        ("line", pa.int64()),
        ("ts", TIMESTAMP),
        ("grain", pa.int16()),
        ("record_key", pa.string()),
        ("provider", pa.string()),
        ("model", pa.string()),
        ("input_uncached_tokens", pa.int64()),
        ("cache_read_tokens", pa.int64()),
        ("cache_write_5m_tokens", pa.int64()),
        ("cache_write_1h_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("requests", pa.int64()),
        ("failed", pa.bool_()),
        ("batch", pa.bool_()),
        ("service_tier", pa.string()),
        ("reported_cost_nanos", pa.int64()),
        # The raw identity fields as canonical JSON (sorted keys): equal dicts give equal strings, so
        # attribution runs once per distinct combination.
        ("identity", pa.string()),
        # The last user message where the source carries it: classified, never stored with the fact.
        ("prompt", pa.string()),
    ]
)

EMPTY_IDENTITY = "{}"


def identity_text(identity: dict[str, str]) -> str:
    if not identity:
        return EMPTY_IDENTITY
    return orjson.dumps(identity, option=orjson.OPT_SORT_KEYS).decode()


def rows_to_table(rows: Sequence[NormalisedRow]) -> pa.Table:
    """Row objects to one normalised table (the path of adapters without a columnar reader)."""
    columns: dict[str, list] = {name: [] for name in NORMALISED.names}
    for row in rows:
        columns["line"].append(row.line)
        columns["ts"].append(row.ts)
        columns["grain"].append(row.grain)
        columns["record_key"].append(row.record_key)
        columns["provider"].append(row.provider)
        columns["model"].append(row.model)
        columns["input_uncached_tokens"].append(row.input_uncached_tokens)
        columns["cache_read_tokens"].append(row.cache_read_tokens)
        columns["cache_write_5m_tokens"].append(row.cache_write_5m_tokens)
        columns["cache_write_1h_tokens"].append(row.cache_write_1h_tokens)
        columns["output_tokens"].append(row.output_tokens)
        columns["reasoning_tokens"].append(row.reasoning_tokens)
        columns["requests"].append(row.requests)
        columns["failed"].append(row.failed)
        columns["batch"].append(row.batch)
        columns["service_tier"].append(row.service_tier)
        columns["reported_cost_nanos"].append(row.reported_cost_nanos)
        columns["identity"].append(identity_text(row.identity))
        columns["prompt"].append(row.prompt)
    return pa.Table.from_pydict(columns, schema=NORMALISED)


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    if not tables:
        return NORMALISED.empty_table()
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables).combine_chunks()
