"""Monthly partitions of the fact table on PostgreSQL (migration usage 0005); SQLite keeps one plain table.

usage_usagefact is PARTITIONED BY RANGE (ts): one partition per calendar month in UTC, named
usage_usagefact_pYYYY_MM, and a DEFAULT partition that stays empty as long as every month a row can land
in exists. Partitions are made ahead of the rows: store_facts ensures the months of each batch before its
rows are inserted, and the daily beat task `ensure_fact_partitions` makes the next two months, so the
store path only creates one when a file brings an older month (a backfill).

Creating a partition takes an ACCESS EXCLUSIVE lock on the parent table until the transaction that made
it commits (the batch's, on the store path): other loads and the reads of the fact table wait for that
batch, which is why the beat task makes them ahead. An advisory lock (7010) lets one creator at a time
check and create, so two loads of the same new month do not race on the catalog.

A row that lands in the DEFAULT partition anyway (a COPY that bypassed store_facts, a month created by
hand and dropped) blocks the creation of its month's partition (PostgreSQL refuses a partition whose range
holds rows of the default). Ensuring that month therefore detaches the default partition, creates the
month, moves its rows there and attaches the default again, in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction

PARENT = "usage_usagefact"
DEFAULT_PARTITION = f"{PARENT}_default"
LOCK_KEY = 7010  # pg_advisory_xact_lock(7010, 0); 7001, 7002 and 7005 guard other writers
MONTHS_AHEAD = 2  # the beat task keeps this month and the next two ready


def month_of(value: dt.date | dt.datetime) -> dt.date:
    """The first day of the UTC month of a timestamp (aware) or of a date."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: fact timestamps are UTC-aware")
        value = value.astimezone(dt.UTC).date()
    return value.replace(day=1)


def next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: dt.date) -> str:
    return f"{PARENT}_p{month:%Y_%m}"


def _bounds(month: dt.date) -> tuple[str, str]:
    # Explicit UTC offsets: the bounds do not depend on the session's time zone.
    return f"{month:%Y-%m-%d} 00:00:00+00", f"{next_month(month):%Y-%m-%d} 00:00:00+00"


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def ensure_partitions(months: Iterable[dt.date | dt.datetime]) -> list[str]:
    """Create the monthly partitions of these months (dates or UTC timestamps) that do not exist yet.

    Returns the names of the partitions created (none on SQLite, or before migration 0005). The usual
    case, every month present, costs one catalog query and takes no lock. Safe to call inside the
    caller's transaction (the store path): the creation commits with it. Call it before that transaction
    touches the fact table: creating a partition waits for every other transaction holding a lock on it.
    """
    if connection.vendor != "postgresql":
        return []
    wanted = sorted({month_of(month) for month in months})
    if not wanted:
        return []
    with connection.cursor() as cursor:
        if not _missing(cursor, wanted):
            return []
        with transaction.atomic():
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [LOCK_KEY])
            missing = _missing(cursor, wanted)  # again: another creator may have made them meanwhile
            for month in missing:
                if _default_has_rows(cursor, month):
                    _create_moving_default_rows(cursor, month)
                else:
                    start, end = _bounds(month)
                    cursor.execute(
                        f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF {PARENT} "
                        "FOR VALUES FROM (%s) TO (%s)",
                        [start, end],
                    )
    return [partition_name(month) for month in missing]


def _missing(cursor, months: list[dt.date]) -> list[dt.date]:
    """The months without a partition; [] when the table is not partitioned (nothing to create)."""
    names = [partition_name(month) for month in months]
    cursor.execute(
        "SELECT (SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)), "
        "ARRAY(SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL)",
        [PARENT, names],
    )
    kind, absent = cursor.fetchone()
    if kind != "p":
        return []
    return [month for month in months if partition_name(month) in set(absent)]


def _default_has_rows(cursor, month: dt.date) -> bool:
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE ts >= %s AND ts < %s)",  # noqa: S608
        list(_bounds(month)),
    )
    return cursor.fetchone()[0]


def _create_moving_default_rows(cursor, month: dt.date) -> None:
    """Detach the default partition, create the month, move the month's rows into it, attach the default.

    The caller's transaction holds it together: nobody sees the table without its default partition, and
    a failure leaves everything as it was.
    """
    start, end = _bounds(month)
    # Every column, id included (a moved row keeps its id), as the catalog lists them today.
    cursor.execute(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        [PARENT],
    )
    columns = cursor.fetchone()[0]
    cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {DEFAULT_PARTITION}")
    cursor.execute(
        f"CREATE TABLE {partition_name(month)} PARTITION OF {PARENT} FOR VALUES FROM (%s) TO (%s)",
        [start, end],
    )
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts >= %s AND ts < %s "  # noqa: S608
        f"RETURNING {columns}) INSERT INTO {PARENT} ({columns}) SELECT {columns} FROM moved",
        [start, end],
    )
    cursor.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT")


def default_partition_months() -> list[dt.date]:
    """The months of the rows in the DEFAULT partition (normally none)."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', ts AT TIME ZONE 'UTC')::date FROM {DEFAULT_PARTITION}"  # noqa: S608
        )
        return sorted(month for (month,) in cursor.fetchall())


def ensure_upcoming_partitions(*, today: dt.date | None = None, ahead: int = MONTHS_AHEAD) -> list[str]:
    """This month and the next `ahead` ones, and a partition for any row that fell into the default."""
    month = month_of(today or dt.datetime.now(dt.UTC))
    months = [month]
    for _ in range(ahead):
        months.append(next_month(months[-1]))
    return ensure_partitions([*months, *default_partition_months()])


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    name: str
    start: dt.date | None  # None for the default partition
    end: dt.date | None  # exclusive
    rows: int  # exact with exact=True, else the planner's estimate (pg_class.reltuples; -1 never analysed)
    bytes: int  # table + indexes + TOAST


def list_partitions(*, exact: bool = False) -> list[PartitionInfo]:
    """The fact table's partitions in time order, the default last; [] when it is not partitioned."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples::bigint, "
            "pg_total_relation_size(c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [PARENT],
        )
        found = cursor.fetchall()
        partitions = []
        for name, estimate, size in found:
            rows = estimate
            if exact:
                cursor.execute(f'SELECT COUNT(*) FROM "{name}"')  # noqa: S608 - a name from the catalog
                rows = cursor.fetchone()[0]
            start = end = None
            if name != DEFAULT_PARTITION and name.startswith(f"{PARENT}_p"):
                year, month = name.removeprefix(f"{PARENT}_p").split("_")
                start = dt.date(int(year), int(month), 1)
                end = next_month(start)
            partitions.append(PartitionInfo(name, start, end, rows, size))
    partitions.sort(key=lambda p: (p.start is None, p.start or dt.date.min, p.name))
    return partitions


# A row's organisation-local day is within 14 hours of its UTC timestamp (UTC-12 to UTC+14; a daily
# bucket's day is its UTC date), so this margin turns a range of days into a range of ts that prunes
# partitions without losing a row.
DAY_MARGIN = dt.timedelta(hours=14)


def ts_range_of_days(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[low, high) UTC bounds of ts that hold every fact of the local days start..end (inclusive)."""
    low = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC) - DAY_MARGIN
    high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) + DAY_MARGIN
    return low, high
