"""The fact table PARTITIONED BY RANGE (ts) on PostgreSQL: one partition per UTC month and a DEFAULT one.

SQLite keeps the plain table (nothing runs there). On PostgreSQL the table is rebuilt in this migration's
transaction: the old one is renamed, a partitioned one is made with the same columns, defaults, identity,
check constraint, key constraints and indexes (the same names: the store path's
`ON CONFLICT (source_id, ts, record_key)` and everything else keep working), its rows are copied with
their ids, the identity sequence carries on from where the old one stood, and the old table is dropped.
Partitions are made for every month that holds rows and for this month and the next two; later months are
made by apps.usage.partitions (the store path and a daily beat task).

The primary key becomes (id, ts): PostgreSQL requires the partition key in every unique constraint of a
partitioned table. Django still treats id alone as the primary key, and ids stay unique because one
identity sequence gives every id (nothing writes ids of its own but this copy and the default-partition
move, which keep the ids they read). Later migrations of UsageFact must respect the layout: a unique
constraint has to include ts, and CREATE INDEX CONCURRENTLY is not available on the parent table.

Reversible: going back rebuilds a plain table with the primary key (id), the same way.
"""

import datetime as dt

from django.db import migrations

TABLE = "usage_usagefact"
OLD = "usage_usagefact_rebuilt_from"
DEFAULT_PARTITION = "usage_usagefact_default"
MONTHS_AHEAD = 2
# The indexes 0001, 0002 and 0004 made, besides the two key constraints.
INDEXES = (
    "CREATE INDEX usage_fact_org_day ON usage_usagefact (organisation_id, day)",
    "CREATE INDEX usage_fact_unpriced ON usage_usagefact (organisation_id, model_id) WHERE cost_nanos IS NULL",
    "CREATE INDEX usage_fact_ts_brin ON usage_usagefact USING brin (ts)",
)


def _next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _index_names(cursor, table: str) -> set[str]:
    cursor.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass(%s)",
        [table],
    )
    return {name for (name,) in cursor.fetchall()}


def _rebuild(cursor, *, partitioned: bool) -> None:
    cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
    # Free the names the new table takes: its identity sequence and its indexes (renaming the index of a
    # key constraint renames the constraint too).
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [OLD])
    (old_sequence,) = cursor.fetchone()
    cursor.execute(f"ALTER SEQUENCE {old_sequence} RENAME TO {OLD}_id_seq")
    old_indexes = _index_names(cursor, OLD)
    for name in old_indexes:
        cursor.execute(f"ALTER INDEX {name} RENAME TO {name}_old")

    layout = " PARTITION BY RANGE (ts)" if partitioned else ""
    cursor.execute(
        f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY "
        f"INCLUDING STORAGE){layout}"
    )
    if partitioned:
        cursor.execute(f"SELECT DISTINCT date_trunc('month', ts AT TIME ZONE 'UTC')::date FROM {OLD}")  # noqa: S608
        months = {month for (month,) in cursor.fetchall()}
        month = dt.datetime.now(dt.UTC).date().replace(day=1)
        for _ in range(MONTHS_AHEAD + 1):
            months.add(month)
            month = _next_month(month)
        for month in sorted(months):
            cursor.execute(
                f"CREATE TABLE {TABLE}_p{month:%Y_%m} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)",
                [f"{month:%Y-%m-%d} 00:00:00+00", f"{_next_month(month):%Y-%m-%d} 00:00:00+00"],
            )
        cursor.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")

    # Rows first, indexes after: one sorted build per index instead of a row-by-row insert into each.
    cursor.execute(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        [OLD],
    )
    (columns,) = cursor.fetchone()
    cursor.execute(f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {OLD}")  # noqa: S608
    cursor.execute(f"SELECT last_value, is_called FROM {OLD}_id_seq")  # noqa: S608
    last_value, is_called = cursor.fetchone()
    cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)", [TABLE, last_value, is_called])

    key = "id, ts" if partitioned else "id"
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT usage_usagefact_pkey PRIMARY KEY ({key})")
    cursor.execute(
        f"ALTER TABLE {TABLE} ADD CONSTRAINT usage_fact_natural_key UNIQUE (source_id, ts, record_key)"
    )
    for statement in INDEXES:
        cursor.execute(statement)
    made = _index_names(cursor, TABLE)
    expected = {name.removesuffix("_old") for name in old_indexes}
    if made != expected:
        # An index added since 0004 that this rebuild does not know: stop rather than lose it.
        raise RuntimeError(f"{TABLE} rebuilt with indexes {sorted(made)}, expected {sorted(expected)}")
    cursor.execute(f"DROP TABLE {OLD}")
    cursor.execute(f"ANALYZE {TABLE}")


def partition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            _rebuild(cursor, partitioned=True)


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            _rebuild(cursor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [("usage", "0004_list_cost_and_buckets")]
    operations = [migrations.RunPython(partition, unpartition)]
