"""Writes to the ledger: store fact rows idempotently, and refresh the daily rollups of touched days.

Bulk paths only (no Model.save() per row): COPY into a staging table on PostgreSQL, executemany on
SQLite, then set-based statements that let the unique natural key decide what is new.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from django.db import connection, transaction

from apps.usage.columns import FACT_COLUMNS, TOKEN_COLUMNS
from apps.usage.models import Grain
from apps.usage.partitions import ensure_partitions, month_of
from apps.usage.reconcile import PLACEHOLDER_MODEL, Layer, ensure_placeholder_models, layer_sql, source_layers
from apps.usage.signals import rollups_refreshed

# The columns store_facts writes: the pipeline's fact columns, then the price columns it adds (list cost
# beside the net cost_nanos, and the overrides that set the net price). Kept apart from FACT_COLUMNS, the
# layout the ingestion benchmark's reference COPY writes.
PRICE_COLUMNS = ("list_cost_nanos", "override_set_id")
STORED_COLUMNS = (*FACT_COLUMNS, *PRICE_COLUMNS)
_KEY = ("source_id", "ts", "record_key")
# What makes a re-sent bucket "changed" (run_id is bookkeeping, not content).
_CONTENT = tuple(column for column in STORED_COLUMNS if column not in _KEY and column != "run_id")
_VOLUME = (
    "input_uncached_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
)
_GRAIN = FACT_COLUMNS.index("grain")
_TS = FACT_COLUMNS.index("ts")
_DAY = FACT_COLUMNS.index("day")
STAGE = "usage_fact_stage"


@dataclass(frozen=True, slots=True)
class StoreResult:
    accepted: int  # new natural keys
    duplicates: int  # already stored with the same content (or repeated within the batch)
    replaced: int  # buckets whose content changed (a re-pulled, grown bucket)


def store_facts(rows: Sequence[tuple] | pa.Table) -> StoreResult:
    """Upsert fact rows on the natural key (source, ts, record_key).

    Rows are tuples in STORED_COLUMNS order, or an Arrow table of those columns: on PostgreSQL a table
    without repeated keys is staged by one CSV COPY that Arrow writes, with no loop over rows.

    A request-grain row that exists already is a duplicate and is left alone; a bucket row replaces
    its stored version when its content differs and it is not smaller (a grown bucket); an identical
    or older, smaller version counts as a duplicate. Must run inside a transaction.
    """
    if connection.vendor == "postgresql":
        ensure_partitions(_months_of(rows))  # before any lock on the fact table (apps.usage.partitions)
    if isinstance(rows, pa.Table):
        if connection.vendor == "postgresql" and not _repeats_a_key(rows):
            return _store_table_postgresql(rows)
        rows = _table_rows(rows)
    if not rows:
        return StoreResult(0, 0, 0)
    unique: dict[tuple, tuple] = {}
    for row in rows:
        key = (row[0], row[_TS], row[2])
        if row[_GRAIN] == Grain.REQUEST:
            unique.setdefault(key, row)  # the first copy of a request stands
        else:
            unique[key] = row  # the last version of a bucket in the batch stands
    in_batch_duplicates = len(rows) - len(unique)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _stage_postgresql(cursor, unique.values())
        else:
            _stage_sqlite(cursor, unique.values())
        replaced = _replace_changed_buckets(cursor)
        accepted = _insert_new(cursor)
        cursor.execute(f"DELETE FROM {STAGE}")  # noqa: S608 - constant table name
    return StoreResult(accepted, len(unique) - accepted - replaced + in_batch_duplicates, replaced)


def _months_of(rows: Sequence[tuple] | pa.Table) -> set[dt.date]:
    """The UTC months of the rows' timestamps: the partitions they go to."""
    if isinstance(rows, pa.Table):
        naive_utc = pc.cast(rows["ts"], pa.timestamp("us"))  # dropping the zone keeps the UTC values
        months = pc.unique(pc.floor_temporal(naive_utc, unit="month")).to_pylist()
        return {month.date() for month in months if month is not None}
    return {month_of(row[_TS]) for row in rows}


def _repeats_a_key(table: pa.Table) -> bool:
    # A hash count over one joined column: no Acero plan, whose thread pool and buffers cost memory.
    keys = pc.binary_join_element_wise(
        pc.cast(table["source_id"], pa.string()),
        pc.cast(table["ts"], pa.string()),
        table["record_key"],
        "\x1f",
    )
    return pc.count_distinct(keys).as_py() != table.num_rows


def _table_rows(table: pa.Table) -> list[tuple]:
    columns = [table[column].to_pylist() for column in STORED_COLUMNS]
    return list(zip(*columns, strict=True))


def _store_table_postgresql(table: pa.Table) -> StoreResult:
    """A batch without repeated keys goes to the stage as one CSV COPY written by Arrow (no row loop)."""
    buffer = io.BytesIO()
    pa_csv.write_csv(table.select(list(STORED_COLUMNS)), buffer, pa_csv.WriteOptions(include_header=False))
    columns = ", ".join(STORED_COLUMNS)
    with connection.cursor() as cursor:
        _create_stage_postgresql(cursor)
        with cursor.cursor.copy(f"COPY {STAGE} ({columns}) FROM STDIN (FORMAT csv)") as copy:  # noqa: S608
            copy.write(buffer.getbuffer())
        replaced = _replace_changed_buckets(cursor)
        accepted = _insert_new(cursor)
        cursor.execute(f"DELETE FROM {STAGE}")  # noqa: S608 - constant table name
    return StoreResult(accepted, table.num_rows - accepted - replaced, replaced)


def _create_stage_postgresql(cursor) -> None:
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ON COMMIT DELETE ROWS "  # noqa: S608 - constants
        f"AS SELECT {', '.join(STORED_COLUMNS)} FROM usage_usagefact WITH NO DATA"
    )


def _stage_postgresql(cursor, rows: Iterable[tuple]) -> None:
    columns = ", ".join(STORED_COLUMNS)
    _create_stage_postgresql(cursor)
    with cursor.cursor.copy(f"COPY {STAGE} ({columns}) FROM STDIN") as copy:  # noqa: S608
        for row in rows:
            copy.write_row(row)


def _stage_sqlite(cursor, rows: Iterable[tuple]) -> None:
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} AS SELECT * FROM usage_usagefact WHERE 0")  # noqa: S608
    placeholders = ", ".join(["%s"] * len(STORED_COLUMNS))
    cursor.executemany(
        f"INSERT INTO {STAGE} ({', '.join(STORED_COLUMNS)}) VALUES ({placeholders})",  # noqa: S608
        [_sqlite_row(row) for row in rows],
    )


def _sqlite_row(row: tuple) -> tuple:
    # Django stores SQLite datetimes as naive UTC text; the natural key compares that text.
    values = list(row)
    values[_TS] = values[_TS].astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")
    values[_DAY] = values[_DAY].isoformat()
    return tuple(values)


def _replace_changed_buckets(cursor) -> int:
    assignments = ", ".join(f"{column} = s.{column}" for column in (*_CONTENT, "run_id"))
    if connection.vendor == "postgresql":
        changed = f"({', '.join('f.' + c for c in _CONTENT)}) IS DISTINCT FROM ({', '.join('s.' + c for c in _CONTENT)})"
        target = "usage_usagefact AS f"
    else:
        changed = " OR ".join(f"usage_usagefact.{c} IS NOT s.{c}" for c in _CONTENT)
        target = "usage_usagefact"
    alias = "f" if connection.vendor == "postgresql" else "usage_usagefact"
    # A bucket only fills up during its period, so an older, smaller export of it that arrives late
    # must not roll the stored one back: replace only with a version that is at least as large.
    if connection.vendor == "postgresql":
        # Take the row locks in key order first: two loads re-sending the same buckets then queue up
        # instead of deadlocking (UPDATE ... FROM has no ORDER BY of its own).
        cursor.execute(
            f"SELECT 1 FROM usage_usagefact AS f JOIN {STAGE} AS s ON f.source_id = s.source_id "  # noqa: S608
            f"AND f.ts = s.ts AND f.record_key = s.record_key WHERE s.grain <> {Grain.REQUEST} "
            f"ORDER BY f.source_id, f.ts, f.record_key FOR UPDATE OF f"
        )
    cast = "::numeric" if connection.vendor == "postgresql" else ""  # sums of 64-bit counts may overflow

    def volume(table: str) -> str:
        return " + ".join(f"{table}.{column}{cast}" for column in _VOLUME)

    not_smaller = (
        f"({volume('s')}) >= ({volume(alias)}) AND COALESCE(s.requests, 0) >= COALESCE({alias}.requests, 0)"
    )
    cursor.execute(
        f"UPDATE {target} SET {assignments} FROM {STAGE} AS s "  # noqa: S608 - built from constants
        f"WHERE s.grain <> {Grain.REQUEST} AND {alias}.source_id = s.source_id AND {alias}.ts = s.ts "
        f"AND {alias}.record_key = s.record_key AND ({changed}) AND {not_smaller}"
    )
    return cursor.rowcount


def _insert_new(cursor) -> int:
    columns = ", ".join(STORED_COLUMNS)
    cursor.execute(
        # Key order: concurrent loads of overlapping rows then wait for each other instead of deadlocking.
        f"INSERT INTO usage_usagefact ({columns}) SELECT {columns} FROM {STAGE} WHERE true "  # noqa: S608
        f"ORDER BY source_id, ts, record_key ON CONFLICT (source_id, ts, record_key) DO NOTHING"
    )
    return cursor.rowcount


_SUMS = TOKEN_COLUMNS
ROLLUP_STAGE = "usage_rollup_stage"
_DIMS = ("team_id", "person_id", "task_id", "provider_id", "model_id")
_BUCKETS = ("list_cost_nanos", "billed_cost_nanos", "estimated_cost_nanos")
_MEASURES = (
    "fact_rows",
    "unpriced_rows",
    "failed_rows",
    "requests",
    *_SUMS,
    "cost_nanos",
    "reported_cost_nanos",
    *_BUCKETS,
    "unpriced_reported_nanos",
)


@transaction.atomic
def refresh_rollups(*, organisation_id: int, days: Iterable[dt.date]) -> int:
    """Recompute the daily rollup rows of these days from the facts; returns the rows written.

    Each provider-day counts its money once (apps.usage.reconcile): the rows come from its most detailed
    layer of sources, plus one unattributed adjustment row when a more authoritative layer (the bill, or
    the provider's usage report) says the total differs.

    Delete-and-refill in one transaction, so a crash leaves either the old or the new day, never half.
    On PostgreSQL an advisory lock per organisation keeps two refreshes from interleaving.
    """
    day_list = sorted(set(days))
    if not day_list:
        return 0
    written = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7001, organisation_id])
        layer, layer_params = layer_sql(source_layers(organisation_id), "source_id")
        _create_rollup_stage(cursor)
        for start in range(0, len(day_list), 500):
            chunk = [day.isoformat() for day in day_list[start : start + 500]]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"DELETE FROM usage_dailyrollup WHERE organisation_id = %s AND day IN ({marks})",  # noqa: S608
                [organisation_id, *chunk],
            )
            _stage_layer_sums(cursor, organisation_id, chunk, layer, layer_params)
            written += _insert_split_rows(cursor, organisation_id)
            written += _insert_adjustments(cursor, organisation_id)
            cursor.execute(f"DELETE FROM {ROLLUP_STAGE}")  # noqa: S608 - constant table name
    transaction.on_commit(
        lambda: rollups_refreshed.send(sender=refresh_rollups, organisation_id=organisation_id, days=day_list)
    )
    return written


def _create_rollup_stage(cursor) -> None:
    """A per-connection scratch table: the facts of the days summed per rollup row and layer."""
    columns = ", ".join(
        [
            "day DATE NOT NULL",
            "layer SMALLINT NOT NULL",
            *(f"{dim} BIGINT" for dim in _DIMS),
            *(f"{measure} BIGINT" for measure in _MEASURES),
        ]
    )
    keep = " ON COMMIT DELETE ROWS" if connection.vendor == "postgresql" else ""
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {ROLLUP_STAGE} ({columns}){keep}")
    cursor.execute(f"DELETE FROM {ROLLUP_STAGE}")  # noqa: S608 - constant table name


def _stage_layer_sums(
    cursor, organisation_id: int, days: list[str], layer: str, layer_params: list[int]
) -> None:
    # The one read of the fact table: everything after this works on the (much smaller) sums.
    dims = ", ".join(f"f.{dim}" for dim in _DIMS)
    sums = ", ".join(f"SUM(f.{column})" for column in _SUMS)
    marks = ", ".join(["%s"] * len(days))
    cursor.execute(
        f"INSERT INTO {ROLLUP_STAGE} (day, layer, {', '.join(_DIMS)}, {', '.join(_MEASURES)}) "  # noqa: S608
        f"SELECT f.day, f.layer, {dims}, COUNT(*), SUM(CASE WHEN f.cost_nanos IS NULL THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN f.failed THEN 1 ELSE 0 END), SUM(f.requests), {sums}, "
        f"COALESCE(SUM(f.cost_nanos), 0), SUM(f.reported_cost_nanos), {_BUCKET_SUMS} "
        f"FROM (SELECT usage_usagefact.*, {layer} AS layer FROM usage_usagefact "
        f"WHERE organisation_id = %s AND day IN ({marks})) f "
        f"GROUP BY f.day, f.layer, {dims}",
        [*layer_params, organisation_id, *days],
    )


# The cost buckets (DailyRollup): billed = invoice lines; estimated = a cost that is a source's own figure
# and not an invoice (no price priced it); computed = the rest. Unpriced rows add what their sources
# reported for them to a separate, never-counted sum.
_BUCKET_SUMS = (
    "COALESCE(SUM(f.list_cost_nanos), 0), "
    f"SUM(CASE WHEN f.layer = {int(Layer.BILLING)} THEN COALESCE(f.cost_nanos, 0) ELSE 0 END), "
    f"SUM(CASE WHEN f.layer <> {int(Layer.BILLING)} AND f.price_ref_id IS NULL "
    "THEN COALESCE(f.cost_nanos, 0) ELSE 0 END), "
    "SUM(CASE WHEN f.cost_nanos IS NULL THEN COALESCE(f.reported_cost_nanos, 0) ELSE 0 END)"
)

_NULL_ID = "CAST(NULL AS BIGINT)"  # typed, so that neither database has to guess
_UNITS = (
    f"SELECT day, provider_id, MIN(layer) AS split_layer, MAX(layer) AS money_layer "  # noqa: S608
    f"FROM {ROLLUP_STAGE} GROUP BY day, provider_id"
)


def _insert_split_rows(cursor, organisation_id: int) -> int:
    """Each provider-day's rows from its most detailed layer only, as they are."""
    columns = ", ".join(("day", *_DIMS, *_MEASURES))
    cursor.execute(
        f"INSERT INTO usage_dailyrollup (organisation_id, {columns}, adjustment) "  # noqa: S608
        f"SELECT %s, {', '.join(f's.{column}' for column in ('day', *_DIMS, *_MEASURES))}, %s "
        f"FROM {ROLLUP_STAGE} s JOIN ({_UNITS}) u "
        f"ON u.day = s.day AND u.provider_id = s.provider_id AND u.split_layer = s.layer",
        [organisation_id, False],
    )
    return cursor.rowcount


def _insert_adjustments(cursor, organisation_id: int) -> int:
    """One unattributed row per provider-day whose money layer's total differs from its split layer's.

    Its buckets are the money layer's minus the split layer's, like its cost, so they still add up to it.
    """
    cursor.execute(
        f"SELECT DISTINCT provider_id FROM {ROLLUP_STAGE} "  # noqa: S608 - constant table name
        f"GROUP BY day, provider_id HAVING MIN(layer) <> MAX(layer)"
    )
    provider_ids = [provider_id for (provider_id,) in cursor.fetchall()]
    if not provider_ids:
        return 0
    ensure_placeholder_models(provider_ids)
    tokens = ", ".join(["0"] * len(_SUMS))
    cursor.execute(
        f"INSERT INTO usage_dailyrollup (organisation_id, day, {', '.join(_DIMS)}, "  # noqa: S608
        f"{', '.join(_MEASURES)}, adjustment) "
        f"SELECT %s, t.day, {_NULL_ID}, {_NULL_ID}, {_NULL_ID}, t.provider_id, m.id, 0, 0, 0, {_NULL_ID}, "
        f"{tokens}, t.money_cost - t.split_cost, {_NULL_ID}, "
        f"{', '.join(f't.money_{b} - t.split_{b}' for b in _BUCKETS)}, 0, %s "
        f"FROM (SELECT s.day, s.provider_id, "
        f"SUM(CASE WHEN s.layer = u.money_layer THEN s.cost_nanos ELSE 0 END) AS money_cost, "
        f"SUM(CASE WHEN s.layer = u.split_layer THEN s.cost_nanos ELSE 0 END) AS split_cost, "
        + "".join(
            f"SUM(CASE WHEN s.layer = u.money_layer THEN s.{b} ELSE 0 END) AS money_{b}, "
            f"SUM(CASE WHEN s.layer = u.split_layer THEN s.{b} ELSE 0 END) AS split_{b}, "
            for b in _BUCKETS
        )
        + "0 AS unused "
        f"FROM {ROLLUP_STAGE} s JOIN ({_UNITS}) u ON u.day = s.day AND u.provider_id = s.provider_id "
        f"WHERE u.split_layer <> u.money_layer GROUP BY s.day, s.provider_id) t "
        f"JOIN catalog_aimodel m ON m.provider_id = t.provider_id AND m.name = %s "
        f"WHERE t.money_cost <> t.split_cost",
        [organisation_id, True, PLACEHOLDER_MODEL],
    )
    return cursor.rowcount
