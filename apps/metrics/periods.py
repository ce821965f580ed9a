"""Metric periods: a day, an ISO week (Monday to Sunday) or a calendar month, named by their first day.

Period texts are read strictly: a weekly value must name a Monday (or an ISO week such as 2026-W32), a
monthly one the 1st (or 2026-08). A Sunday-based weekly export would otherwise slide every value into
the week before without a word; refusing it names the problem instead.
"""

from __future__ import annotations

import datetime as dt
import re

from apps.metrics.models import MetricGrain

_ISO_WEEK = re.compile(r"^(\d{4})-?W(\d{2})$", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class PeriodInvalid(ValueError):
    """A period text that does not name a period of the metric's grain; the message says why."""


def period_parse(text: str, grain: str) -> dt.date:
    """The first day of the period `text` names, for a metric of this grain."""
    text = text.strip()
    if not text:
        raise PeriodInvalid("is missing")
    if grain == MetricGrain.WEEK and (match := _ISO_WEEK.match(text)):
        try:
            return dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
        except ValueError:
            raise PeriodInvalid(f"{text!r} is not an ISO week") from None
    if grain == MetricGrain.MONTH and (match := _MONTH.match(text)):
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise PeriodInvalid(f"{text!r} is not a month")
        return dt.date(year, month, 1)
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise PeriodInvalid(f"{text!r} is not a date (YYYY-MM-DD){_grain_hint(grain)}") from None
    if grain == MetricGrain.WEEK and day.weekday() != 0:
        monday = day - dt.timedelta(days=day.weekday())
        raise PeriodInvalid(
            f"{text} is a {day:%A}; weekly periods start on Monday "
            f"(this day is in the week of {monday.isoformat()}, {period_label(monday, grain)})"
        )
    if grain == MetricGrain.MONTH and day.day != 1:
        raise PeriodInvalid(f"{text} is not the first day of a month (write {day:%Y-%m} or {day:%Y-%m}-01)")
    return day


def _grain_hint(grain: str) -> str:
    if grain == MetricGrain.WEEK:
        return " or an ISO week (2026-W32)"
    if grain == MetricGrain.MONTH:
        return " or a month (2026-08)"
    return ""


def period_of(day: dt.date, grain: str) -> dt.date:
    """The start of the period that contains `day`."""
    if grain == MetricGrain.WEEK:
        return day - dt.timedelta(days=day.weekday())
    if grain == MetricGrain.MONTH:
        return day.replace(day=1)
    return day


def period_next(start: dt.date, grain: str) -> dt.date:
    if grain == MetricGrain.WEEK:
        return start + dt.timedelta(days=7)
    if grain == MetricGrain.MONTH:
        return dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + dt.timedelta(days=1)


def period_end(start: dt.date, grain: str) -> dt.date:
    """The last day of the period (inclusive)."""
    return period_next(start, grain) - dt.timedelta(days=1)


def periods_within(start: dt.date, end: dt.date, grain: str) -> list[dt.date]:
    """The starts of the periods lying wholly inside start..end (inclusive): no partial periods."""
    first = period_of(start, grain)
    if first < start:
        first = period_next(first, grain)
    periods = []
    while period_end(first, grain) <= end:
        periods.append(first)
        first = period_next(first, grain)
    return periods


def period_label(start: dt.date, grain: str) -> str:
    if grain == MetricGrain.WEEK:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if grain == MetricGrain.MONTH:
        return f"{start:%Y-%m}"
    return start.isoformat()


def grain_noun(grain: str, plural: bool = False) -> str:
    noun = {MetricGrain.DAY: "day", MetricGrain.WEEK: "week", MetricGrain.MONTH: "month"}[grain]
    return noun + "s" if plural else noun
