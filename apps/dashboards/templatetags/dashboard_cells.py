"""How the dashboards show a card or a cell: readable on the page, exact in a data attribute."""

from __future__ import annotations

from django import template

from apps.dashboards.tables import Kind, csv_value, display

register = template.Library()


@register.filter
def cell(value: object, kind: str) -> str:
    """A value for people: dollars to the cent (four decimals per request), percentages, 1.2M tokens."""
    return display(value, Kind(kind))


@register.filter
def exact(value: object, kind: str) -> object:
    """The value as the CSV writes it (exact dollars), for data-exact attributes and tests."""
    return csv_value(None if value == "" else value, Kind(kind))
