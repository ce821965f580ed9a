"""The table behind each chart: one definition that the page renders and the CSV download writes.

A table holds raw values (nano-dollars, counts, ratios); the page formats them for people, the CSV writes
them exact (dollars to the nano-dollar, nine decimals) with formula-safe text (apps.ingestion.csvsafe), so
the two can never disagree about which rows and which numbers there are.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from django.http import HttpResponse

from apps.ingestion.csvsafe import safe_cell
from apps.usage.money import usd_text

UNKNOWN = "unknown"
NANOS = Decimal(1_000_000_000)


class Kind(StrEnum):
    TEXT = "text"
    DATE = "date"
    USD = "usd"  # nano-dollars; the page rounds to the cent
    USD_FINE = "usd_fine"  # nano-dollars of small amounts (per request): the page shows four decimals
    INT = "int"
    TOKENS = "tokens"
    RATIO = "ratio"  # 0..1, shown as a percentage

    @property
    def numeric(self) -> bool:
        return self not in (Kind.TEXT, Kind.DATE)


@dataclass(frozen=True, slots=True)
class Column:
    name: str  # the CSV header: lower_snake, with its unit (cost_usd, requests, cache_hit_ratio)
    title: str  # the page's header
    kind: Kind = Kind.TEXT
    on_page: bool = True  # False: in the CSV only (identifiers for joins: slugs, emails, model keys)


@dataclass(frozen=True, slots=True)
class TableRow:
    values: tuple
    link: str | None = None  # where the first cell leads (a team's, person's or task's page)
    drill: str | None = None  # the fact rows behind this row
    depth: int = 0  # in a tree of teams


@dataclass(frozen=True, slots=True)
class Cell:
    column: str
    text: str  # for people
    exact: object  # as the CSV holds it
    numeric: bool


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # in the CSV's URL and file name
    title: str
    columns: tuple[Column, ...]
    rows: list[TableRow]
    total: tuple | None = None  # a footer on the page; never in the CSV, where it would be summed twice
    note: str = ""
    empty: str = "No usage in this period for these filters. Widen the dates or clear a filter."

    @property
    def has_drill(self) -> bool:
        return any(row.drill for row in self.rows)

    @property
    def page_columns(self) -> list[Column]:
        return [column for column in self.columns if column.on_page]

    def page_rows(self) -> list[tuple[TableRow, list[Cell]]]:
        """Each row with its cells formatted once here: a template loop with filters per cell costs
        several times more on a table of hundreds of rows."""
        return [(row, self._cells(row.values)) for row in self.rows]

    def page_total(self) -> list[Cell] | None:
        if self.total is None:
            return None
        return [
            Cell(column.name, "" if value == "" else (str(value) if index == 0 else display(value, column.kind)),
                 csv_value(None if value == "" else value, column.kind), column.kind.numeric)
            for index, (value, column) in enumerate(zip(self.total, self.columns, strict=True))
            if column.on_page
        ]  # fmt: skip

    def _cells(self, values: tuple) -> list[Cell]:
        return [
            Cell(column.name, display(value, column.kind), csv_value(value, column.kind), column.kind.numeric)
            for value, column in zip(values, self.columns, strict=True)
            if column.on_page
        ]

    def csv_values(self, row: TableRow) -> list:
        return [csv_value(value, column.kind) for value, column in zip(row.values, self.columns, strict=True)]


def csv_value(value: object, kind: Kind) -> object:
    """The exact value a CSV cell holds: money as a decimal string, ratios to six places, text defanged."""
    if value is None:
        return UNKNOWN if kind in (Kind.USD, Kind.USD_FINE, Kind.RATIO) else ""
    if kind in (Kind.USD, Kind.USD_FINE):
        return usd_text(int(value))
    if kind == Kind.RATIO:
        return f"{value:.6f}"
    if kind == Kind.DATE:
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    if kind.numeric:
        return int(value)
    return safe_cell(str(value))


def _dollars(nanos: int, places: str) -> Decimal:
    return (Decimal(nanos) / NANOS).quantize(Decimal(places), rounding=ROUND_HALF_EVEN)


def compact_count(value: int) -> str:
    """12,345 below a million; 1.23M, 4.5B above (token counts get long)."""
    for size, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:,}"


def display(value: object, kind: Kind) -> str:
    """A value for people: dollars to the cent (four decimals per request), percentages, 1.2M tokens."""
    if value is None or value == "":
        return "unknown" if kind == Kind.USD and value is None else "–"
    if kind == Kind.USD:
        return f"${_dollars(value, '0.01'):,.2f}" if value >= 0 else f"−${-_dollars(value, '0.01'):,.2f}"
    if kind == Kind.USD_FINE:
        return f"${_dollars(value, '0.0001'):,.4f}"
    if kind == Kind.RATIO:
        return f"{100 * value:.1f}%"
    if kind == Kind.TOKENS:
        return compact_count(int(value))
    if kind == Kind.INT:
        return f"{int(value):,}"
    if kind == Kind.DATE:
        return f"{value:%a %-d %b %Y}"
    return str(value)


def csv_response(table: Table, *, file_stem: str) -> HttpResponse:
    """The table as a download: server-chosen ASCII name (RFC 6266), never cached (TESTPLAN I1-I3)."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{file_stem}-{table.name}.csv"'
    response["Cache-Control"] = "no-store"
    writer = csv.writer(response, lineterminator="\n")
    writer.writerow([column.name for column in table.columns])
    for row in table.rows:
        writer.writerow(table.csv_values(row))
    return response


def rows_of(values: Iterable[tuple]) -> list[TableRow]:
    return [TableRow(tuple(value)) for value in values]
