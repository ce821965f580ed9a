"""Budget periods in the organisation's time zone: months, fiscal quarters and years, custom dates."""

import datetime as dt

import pytest

from apps.budgets import services
from apps.budgets.models import BudgetSettings, LimitState, Period
from apps.budgets.periods import fiscal_year_label, period_bounds
from tests.budgets.conftest import ONE, limit_on

D = dt.date


@pytest.mark.parametrize(
    ("period", "today", "fiscal_month", "expected"),
    [
        ("month", D(2026, 11, 23), 1, (D(2026, 11, 1), D(2026, 11, 30))),
        ("month", D(2028, 2, 10), 1, (D(2028, 2, 1), D(2028, 2, 29))),  # a leap year
        ("quarter", D(2026, 11, 23), 1, (D(2026, 10, 1), D(2026, 12, 31))),
        ("fiscal_year", D(2026, 11, 23), 1, (D(2026, 1, 1), D(2026, 12, 31))),
        # A fiscal year from April: quarters follow it.
        ("fiscal_year", D(2026, 11, 23), 4, (D(2026, 4, 1), D(2027, 3, 31))),
        ("fiscal_year", D(2027, 2, 10), 4, (D(2026, 4, 1), D(2027, 3, 31))),
        ("fiscal_year", D(2026, 4, 1), 4, (D(2026, 4, 1), D(2027, 3, 31))),
        ("fiscal_year", D(2026, 3, 31), 4, (D(2025, 4, 1), D(2026, 3, 31))),
        ("quarter", D(2026, 11, 23), 4, (D(2026, 10, 1), D(2026, 12, 31))),
        ("quarter", D(2027, 3, 31), 4, (D(2027, 1, 1), D(2027, 3, 31))),
        ("quarter", D(2026, 4, 30), 4, (D(2026, 4, 1), D(2026, 6, 30))),
        # From July: the first quarter is July to September, the last April to June.
        ("fiscal_year", D(2026, 6, 30), 7, (D(2025, 7, 1), D(2026, 6, 30))),
        ("quarter", D(2026, 6, 30), 7, (D(2026, 4, 1), D(2026, 6, 30))),
        ("quarter", D(2026, 7, 1), 7, (D(2026, 7, 1), D(2026, 9, 30))),
        ("quarter", D(2026, 2, 1), 11, (D(2026, 2, 1), D(2026, 4, 30))),
        ("fiscal_year", D(2026, 10, 31), 11, (D(2025, 11, 1), D(2026, 10, 31))),
    ],
)
def test_period_bounds(period, today, fiscal_month, expected):
    assert period_bounds(period, today, fiscal_year_start_month=fiscal_month) == expected


def test_custom_periods_are_their_own_dates_and_must_be_ordered():
    bounds = period_bounds("custom", D(2026, 1, 1), custom_start=D(2026, 3, 10), custom_end=D(2026, 5, 9))
    assert bounds == (D(2026, 3, 10), D(2026, 5, 9))
    with pytest.raises(ValueError, match="custom period"):
        period_bounds("custom", D(2026, 1, 1), custom_start=D(2026, 5, 9), custom_end=D(2026, 3, 10))


def test_fiscal_year_labels():
    assert fiscal_year_label(D(2026, 4, 1)) == "FY2026/27"
    assert fiscal_year_label(D(2026, 1, 1)) == "FY2026"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_a_request_at_half_past_eleven_local_counts_in_that_local_month(acme, teams, people, usage, system):
    """New York, 31 Jan: 23:30 local is already 1 Feb in UTC; it is January's spend, and 00:30 is February's."""
    acme.time_zone = "America/New_York"
    acme.save()
    usage(
        ("alice@acme.example", 1, at("2026-02-01T04:30:00+00:00")),  # 31 Jan 23:30 EST
        ("alice@acme.example", 2, at("2026-02-01T05:30:00+00:00")),  # 1 Feb 00:30 EST
        ("alice@acme.example", 4, at("2026-01-01T04:59:00+00:00")),  # 31 Dec 23:59 EST: not January
    )
    limit = limit_on(system, team=teams["platform"], amount=10 * ONE)

    services.state_refresh(organisation_id=acme.pk, now=at("2026-02-01T04:45:00+00:00"))  # 31 Jan 23:45 local
    state = LimitState.objects.get(limit=limit)
    assert (state.period_start, state.period_end, state.spent) == (D(2026, 1, 1), D(2026, 1, 31), 1 * ONE)

    services.state_refresh(organisation_id=acme.pk, now=at("2026-02-01T17:00:00+00:00"))  # 1 Feb, noon local
    state.refresh_from_db()
    assert (state.period_start, state.period_end, state.spent) == (D(2026, 2, 1), D(2026, 2, 28), 2 * ONE)


def test_a_fiscal_year_from_april_in_london_time(acme, teams, people, usage, system):
    """British Summer Time began on 29 March 2026: 31 March 23:30 local is 22:30 UTC, still fiscal 2025/26."""
    acme.time_zone = "Europe/London"
    acme.save()
    BudgetSettings.objects.create(organisation=acme, fiscal_year_start_month=4)
    usage(
        ("alice@acme.example", 3, at("2026-03-31T22:30:00+00:00")),  # 31 Mar 23:30 BST
        ("alice@acme.example", 5, at("2026-03-31T23:30:00+00:00")),  # 1 Apr 00:30 BST
        ("alice@acme.example", 7, at("2025-04-01T00:30:00+00:00")),  # 1 Apr 2025 01:30 BST
        ("alice@acme.example", 11, at("2025-03-31T23:30:00+00:00")),  # 1 Apr 2025 00:30 BST
    )
    limit = limit_on(system, team=teams["platform"], amount=100 * ONE, period=Period.FISCAL_YEAR)

    services.state_refresh(organisation_id=acme.pk, now=at("2026-03-31T22:45:00+00:00"))
    state = LimitState.objects.get(limit=limit)
    assert (state.period_start, state.period_end) == (D(2025, 4, 1), D(2026, 3, 31))
    assert state.spent == (3 + 7 + 11) * ONE

    services.state_refresh(organisation_id=acme.pk, now=at("2026-04-15T12:00:00+00:00"))
    state.refresh_from_db()
    assert (state.period_start, state.period_end, state.spent) == (D(2026, 4, 1), D(2027, 3, 31), 5 * ONE)
