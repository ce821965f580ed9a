"""The forecaster on series whose answer is known by hand: weekday and weekend rates, band, exhaustion."""

import datetime as dt

import pytest

from apps.budgets.forecast import MIN_HISTORY_DAYS, backtest, project

D = dt.date


def weekly(start: dt.date, end: dt.date, weekday: int, weekend: int) -> dict[dt.date, int]:
    days = (end - start).days + 1
    return {
        start + dt.timedelta(n): weekend if (start + dt.timedelta(n)).weekday() >= 5 else weekday
        for n in range(days)
    }


def test_weekdays_and_weekends_are_projected_at_their_own_rates():
    # 3-16 August 2026: weekdays 400, weekend days 100; 17 August (a Monday) is today, half gone, 200 so far.
    daily = weekly(D(2026, 8, 3), D(2026, 8, 16), 400, 100) | {D(2026, 8, 17): 200}
    forecast = project(
        daily,
        period_start=D(2026, 8, 1),
        period_end=D(2026, 8, 31),
        today=D(2026, 8, 17),
        limit=8_000,
        today_fraction_left=0.5,
        data_start=D(2026, 8, 3),
    )
    assert forecast.spent == 2 * (5 * 400 + 2 * 100) + 200 == 4_600
    assert (forecast.weekday_rate, forecast.weekend_rate) == (pytest.approx(400), pytest.approx(100))
    # The rest of today (200), then 18-31 August: 10 weekdays and 4 weekend days.
    assert forecast.projected == 4_600 + 200 + 10 * 400 + 4 * 100 == 9_200
    # A steady history has no scatter: the band is the drift allowance alone, 4 % of the 4,600 still to come.
    assert forecast.low == round(9_200 - 1.645 * 0.04 * 4_600) == 8_897
    assert forecast.high == 9_503
    # 4,800 at the end of Monday 17th; +400 per weekday: 8,000 is reached on Thursday 27 August.
    assert forecast.exhaustion_date == D(2026, 8, 27)
    assert [point.day for point in forecast.path][:2] == [D(2026, 8, 17), D(2026, 8, 18)]


def test_spend_already_over_the_limit_dates_the_day_it_happened():
    daily = weekly(D(2026, 8, 3), D(2026, 8, 16), 400, 100)
    forecast = project(
        daily, period_start=D(2026, 8, 1), period_end=D(2026, 8, 31), today=D(2026, 8, 16), limit=1_000
    )
    assert forecast.exhaustion_date == D(2026, 8, 5)  # 400 + 400 + 400 by Wednesday


def test_days_before_the_ledger_begins_are_unknown_not_zero():
    daily = weekly(D(2026, 8, 10), D(2026, 8, 23), 400, 100)
    common = dict(period_start=D(2026, 8, 1), period_end=D(2026, 8, 31), today=D(2026, 8, 23))
    assert project(daily, data_start=D(2026, 8, 10), **common).weekday_rate == pytest.approx(400)
    assert project(daily, **common).weekday_rate < 400  # zeros before 10 August drag it down


def test_too_little_history_gives_no_forecast():
    daily = weekly(D(2026, 8, 1), D(2026, 8, MIN_HISTORY_DAYS - 1), 400, 100)
    common = dict(period_start=D(2026, 8, 1), period_end=D(2026, 8, 31), data_start=D(2026, 8, 1))
    assert project(daily, today=D(2026, 8, MIN_HISTORY_DAYS - 1), **common) is None
    assert project(daily, today=D(2026, 8, MIN_HISTORY_DAYS), **common) is not None


def test_scatter_widens_the_band_and_it_contains_the_projection():
    daily = {D(2026, 8, 3) + dt.timedelta(n): (300 if n % 2 else 500) for n in range(14) if n % 7 < 5}
    forecast = project(daily, period_start=D(2026, 8, 1), period_end=D(2026, 8, 31), today=D(2026, 8, 16))
    steady = project(
        weekly(D(2026, 8, 3), D(2026, 8, 16), 400, 0),
        period_start=D(2026, 8, 1),
        period_end=D(2026, 8, 31),
        today=D(2026, 8, 16),
    )
    assert forecast.low < forecast.projected < forecast.high
    assert forecast.high - forecast.low > steady.high - steady.low


def test_the_backtest_of_a_steady_weekly_pattern_has_no_error():
    daily = weekly(D(2026, 1, 1), D(2026, 4, 30), 400, 100)
    months = [
        (D(2026, 2, 1), D(2026, 2, 28)),
        (D(2026, 3, 1), D(2026, 3, 31)),
        (D(2026, 5, 1), D(2026, 5, 31)),
    ]
    result = backtest({"team": daily}, months, data_start=D(2026, 1, 1), data_end=D(2026, 4, 30))
    assert len(result.points) == 6  # May is beyond the data
    assert result.mape == 0.0
    assert result.band_coverage == 1.0
    assert [p.as_of for p in result.points[:3]] == [D(2026, 2, 7), D(2026, 2, 14), D(2026, 2, 21)]
