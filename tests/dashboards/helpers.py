"""Reading what a dashboard page or download says: its cards, the tables behind its charts, its CSV."""

from __future__ import annotations

import csv
import io

from apps.dashboards.tables import Table


def card(response, testid: str):
    """The raw value (nano-dollars, a count, a ratio) of the card with this test id."""
    for item in response.context["cards"]:
        if item.testid == testid:
            return item.value
    raise KeyError(
        f"no card {testid!r} on the page; cards: {[item.testid for item in response.context['cards']]}"
    )


def table(response, name: str) -> Table:
    for panel in response.context["panels"]:
        if panel.name == name:
            return panel.table
    raise KeyError(f"no panel {name!r}; panels: {[panel.name for panel in response.context['panels']]}")


def column(table: Table, name: str) -> list:
    index = [item.name for item in table.columns].index(name)
    return [row.values[index] for row in table.rows]


def by_label(table: Table, name: str) -> dict:
    """First column -> the named column's raw value."""
    return dict(zip(column(table, table.columns[0].name), column(table, name), strict=True))


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.content[:500]
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def nanos(text: str) -> int:
    """An exact dollar string of nine decimals ("12.345678901") as nano-dollars."""
    whole, _, fraction = text.partition(".")
    assert len(fraction) == 9, text
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole)) * 10**9 + int(fraction))
