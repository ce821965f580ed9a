"""Budget periods as organisation-local date ranges (inclusive), and "today" in the organisation's time zone.

Rollups are keyed by the organisation-local day a fact counts in, so a period is just a range of those
days: a request at 23:30 local time on the last day of a month counts in that month, whatever UTC says.
Quarters follow the fiscal year (with a January start they are the calendar quarters).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.utils import timezone

PERIOD_NAMES = {"month": "monthly", "quarter": "quarterly", "fiscal_year": "annual", "custom": ""}


def local_today(time_zone: str, now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(ZoneInfo(time_zone)).date()


def local_day_fraction_left(time_zone: str, now: dt.datetime | None = None) -> float:
    """How much of the organisation-local day is still to come (0..1)."""
    local = (now or timezone.now()).astimezone(ZoneInfo(time_zone))
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    return max(0.0, 1.0 - seconds / 86_400)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_bounds(
    period: str,
    today: dt.date,
    *,
    fiscal_year_start_month: int = 1,
    custom_start: dt.date | None = None,
    custom_end: dt.date | None = None,
) -> tuple[dt.date, dt.date]:
    """The period of the given kind that contains `today`: (first day, last day)."""
    if period == "custom":
        if custom_start is None or custom_end is None or custom_end < custom_start:
            raise ValueError("a custom period needs a start and an end on or after it")
        return custom_start, custom_end
    if not 1 <= fiscal_year_start_month <= 12:
        raise ValueError(f"fiscal_year_start_month must be 1..12, not {fiscal_year_start_month}")
    if period == "month":
        months = 1
        start = today.replace(day=1)
    elif period in ("quarter", "fiscal_year"):
        months = 3 if period == "quarter" else 12
        # Months since the fiscal year began, rounded down to a whole period.
        offset = (today.month - fiscal_year_start_month) % 12
        start = _add_months(today.replace(day=1), -(offset % months))
    else:
        raise ValueError(f"unknown period {period!r}")
    return start, _add_months(start, months) - dt.timedelta(days=1)


def fiscal_year_label(start: dt.date) -> str:
    """FY2026/27 for a fiscal year that starts in April 2026; FY2026 for one that starts in January."""
    if start.month == 1:
        return f"FY{start.year}"
    return f"FY{start.year}/{(start.year + 1) % 100:02d}"
