"""ISO weeks and when a digest is due, in the organisation's time zone."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.digests.weeks import IsoWeek, due_week, last_complete_week

MONDAY_8 = dt.time(8, 0)
DAY = dt.timedelta(hours=24)


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_a_week_is_monday_to_sunday_and_reads_as_dates():
    week = IsoWeek.parse("2026-W32")
    assert (week.monday, week.sunday) == (dt.date(2026, 8, 3), dt.date(2026, 8, 9))
    assert week.label == "3–9 Aug 2026"
    assert IsoWeek.parse("2026-W31").label == "27 Jul – 2 Aug 2026"
    assert IsoWeek.parse("2026-W53").label == "28 Dec 2026 – 3 Jan 2027"
    assert str(week.shifted(-4)) == "2026-W28"
    assert str(IsoWeek.parse("2027-W01").shifted(-1)) == "2026-W53"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-32", "week '2026-32' is not of the form YYYY-Www (e.g. 2026-W32)"),
        ("2026-W54", "week '2026-W54' does not exist: 2026 has no ISO week 54"),
        ("2025-W53", "week '2025-W53' does not exist: 2025 has no ISO week 53"),
    ],
)
def test_a_bad_week_is_refused_with_its_reason(text, message):
    with pytest.raises(ValueError) as refused:
        IsoWeek.parse(text)
    assert str(refused.value) == message


def test_the_last_complete_week_is_the_one_before_the_local_week():
    # Monday 00:30 in Auckland is still Sunday in UTC: the local week decides.
    sunday_utc = utc(2026, 8, 9, 12, 30)
    assert str(last_complete_week("Pacific/Auckland", sunday_utc)) == "2026-W32"
    assert str(last_complete_week("UTC", sunday_utc)) == "2026-W31"


@pytest.mark.parametrize(
    ("time_zone", "first_due_utc"),
    [
        ("UTC", utc(2026, 8, 10, 8, 0)),
        ("America/New_York", utc(2026, 8, 10, 12, 0)),  # EDT, UTC-4
        ("Europe/Berlin", utc(2026, 8, 10, 6, 0)),  # CEST, UTC+2
        ("Pacific/Auckland", utc(2026, 8, 9, 20, 0)),  # NZST, UTC+12: Sunday evening in UTC
    ],
)
def test_monday_0800_is_the_organisations_monday_0800(time_zone, first_due_utc):
    def due(now):
        return due_week(time_zone=time_zone, weekday=1, at=MONDAY_8, now=now, window=DAY)

    minute = dt.timedelta(minutes=1)
    assert due(first_due_utc - minute) is None
    assert str(due(first_due_utc)) == "2026-W32"
    assert str(due(first_due_utc + DAY - minute)) == "2026-W32"
    assert due(first_due_utc + DAY) is None  # past the window: nothing stale goes out


def test_a_custom_schedule_reports_on_the_last_complete_week():
    # Friday 16:30 in Berlin (CEST) is 14:30 UTC on Friday 14 Aug; the complete week before it is W32.
    friday = due_week(
        time_zone="Europe/Berlin",
        weekday=5,
        at=dt.time(16, 30),
        now=utc(2026, 8, 14, 14, 30),
        window=DAY,
    )
    assert str(friday) == "2026-W32"


def test_a_schedule_across_a_daylight_saving_change_keeps_local_time():
    # Europe/Berlin leaves summer time on Sunday 25 Oct 2026: Monday 26 Oct 08:00 CET is 07:00 UTC.
    def due(now):
        return due_week(time_zone="Europe/Berlin", weekday=1, at=MONDAY_8, now=now, window=DAY)

    assert due(utc(2026, 10, 26, 6, 59)) is None
    assert str(due(utc(2026, 10, 26, 7, 0))) == "2026-W43"
