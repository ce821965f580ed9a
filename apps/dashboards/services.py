"""Writes: keep the narrow rollups (apps.dashboards.models) equal to the ledger's daily rollup.

Set-wise SQL only, the same statements on SQLite and PostgreSQL: per refreshed day, delete the narrow rows
and re-insert them as one GROUP BY of usage_dailyrollup; months are re-summed from the day x person table.
Nothing reads the fact table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction

from apps.dashboards.models import (
    MEASURES,
    DayPerson,
    DayPersonModel,
    DayPersonTask,
    DayTeamModel,
    DayTeamTask,
    MonthPerson,
)

SOURCE = "usage_dailyrollup"
# Requests stay NULL when no source counted them (SUM of NULLs is NULL); the rest are plain sums, except the
# cost of counted requests, which the daily rollup does not have as a column.
_FROM_DAILY = {"counted_cost_nanos": "SUM(CASE WHEN requests IS NULL THEN 0 ELSE cost_nanos END)"}
_SUMS = ", ".join(_FROM_DAILY.get(measure, f"SUM({measure})") for measure in MEASURES)
_MONTH_SUMS = ", ".join(f"SUM({measure})" for measure in MEASURES)
_COLUMNS = ", ".join(MEASURES)
_CHUNK = 500  # days per statement: far below SQLite's parameter limit


@dataclass(frozen=True, slots=True)
class DayTable:
    table: str
    dimensions: tuple[str, ...]


DAY_TABLES = (
    DayTable(DayTeamModel._meta.db_table, ("team_id", "provider_id", "model_id")),
    DayTable(DayTeamTask._meta.db_table, ("team_id", "task_id")),
    DayTable(DayPerson._meta.db_table, ("person_id", "team_id")),
    DayTable(DayPersonModel._meta.db_table, ("person_id", "team_id", "provider_id", "model_id")),
    DayTable(DayPersonTask._meta.db_table, ("person_id", "team_id", "task_id")),
)
MONTH_TABLE = MonthPerson._meta.db_table
DAY_PERSON_TABLE = DayPerson._meta.db_table


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_end(month: dt.date) -> dt.date:
    following = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


@transaction.atomic
def refresh_narrow_rollups(*, organisation_id: int, days: Iterable[dt.date]) -> int:
    """Rebuild these days (and their months) of every narrow table from DailyRollup; returns rows written.

    Delete-and-refill in one transaction: a reader sees the old days or the new ones, never a mix. On
    PostgreSQL an advisory lock per organisation keeps two refreshes (two ingestions finishing together)
    from interleaving their deletes and inserts.
    """
    day_list = sorted(set(days))
    if not day_list:
        return 0
    written = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # 7001 is the daily rollup's, 7002 re-attribution's: its own key, so neither waits on it.
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7005, organisation_id])
        for start in range(0, len(day_list), _CHUNK):
            chunk = [day.isoformat() for day in day_list[start : start + _CHUNK]]
            marks = ", ".join(["%s"] * len(chunk))
            for target in DAY_TABLES:
                dimensions = ", ".join(target.dimensions)
                cursor.execute(
                    f"DELETE FROM {target.table} WHERE organisation_id = %s AND day IN ({marks})",  # noqa: S608
                    [organisation_id, *chunk],
                )
                cursor.execute(
                    f"INSERT INTO {target.table} (organisation_id, day, {dimensions}, {_COLUMNS}) "  # noqa: S608
                    f"SELECT organisation_id, day, {dimensions}, {_SUMS} FROM {SOURCE} "
                    f"WHERE organisation_id = %s AND day IN ({marks}) "
                    f"GROUP BY organisation_id, day, {dimensions}",
                    [organisation_id, *chunk],
                )
                written += cursor.rowcount
        for month in sorted({month_start(day) for day in day_list}):
            written += _refresh_month(cursor, organisation_id, month)
    return written


def _refresh_month(cursor, organisation_id: int, month: dt.date) -> int:
    # The month is a parameter, not a date function: the statement stays the same on both databases.
    cursor.execute(
        f"DELETE FROM {MONTH_TABLE} WHERE organisation_id = %s AND month = %s",  # noqa: S608
        [organisation_id, month.isoformat()],
    )
    cursor.execute(
        f"INSERT INTO {MONTH_TABLE} (organisation_id, month, person_id, team_id, {_COLUMNS}) "  # noqa: S608
        f"SELECT organisation_id, %s, person_id, team_id, {_MONTH_SUMS} FROM {DAY_PERSON_TABLE} "
        f"WHERE organisation_id = %s AND day >= %s AND day <= %s "
        f"GROUP BY organisation_id, person_id, team_id",
        [month.isoformat(), organisation_id, month.isoformat(), month_end(month).isoformat()],
    )
    return cursor.rowcount


def rebuild_narrow_rollups(*, organisation_id: int | None = None) -> int:
    """Every day the ledger has rollups for (one organisation, or all): a backfill, or a repair after a
    refresh that failed. Days the ledger no longer has are removed too."""
    with connection.cursor() as cursor:
        where = "WHERE organisation_id = %s" if organisation_id is not None else ""
        params = [organisation_id] if organisation_id is not None else []
        cursor.execute(f"SELECT DISTINCT organisation_id, day FROM {SOURCE} {where}", params)  # noqa: S608
        wanted: dict[int, set[dt.date]] = {}
        for org_id, day in cursor.fetchall():
            wanted.setdefault(org_id, set()).add(_as_date(day))
        for target in (*DAY_TABLES, DayTable(MONTH_TABLE, ())):
            column = "month" if target.table == MONTH_TABLE else "day"
            cursor.execute(
                f"SELECT DISTINCT organisation_id, {column} FROM {target.table} {where}",  # noqa: S608
                params,
            )
            for org_id, day in cursor.fetchall():
                wanted.setdefault(org_id, set()).add(_as_date(day))
    # A stale narrow day without ledger rows is refreshed to nothing: the GROUP BY inserts no rows.
    return sum(refresh_narrow_rollups(organisation_id=org_id, days=days) for org_id, days in wanted.items())


def _as_date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
