"""ISO weeks as organisation-local day ranges, and when a weekly digest is due. Pure functions.

Rollups are keyed by the organisation-local day a fact counts in, so a week is simply Monday..Sunday of
those days. A digest *reports on* a complete week: the one sent on Monday 3 August at 08:00 covers
27 July..2 August (2026-W31). The sent ledger is keyed by that reported week.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True, order=True, slots=True)
class IsoWeek:
    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        """'2026-W32' -> IsoWeek(2026, 32); a clear ValueError for anything else."""
        match = _WEEK.match(text.strip())
        if not match:
            raise ValueError(f"week {text!r} is not of the form YYYY-Www (e.g. 2026-W32)")
        year, week = int(match[1]), int(match[2])
        try:
            dt.date.fromisocalendar(year, week, 1)
        except ValueError:
            raise ValueError(f"week {text!r} does not exist: {year} has no ISO week {week}") from None
        return cls(year, week)

    @classmethod
    def of(cls, day: dt.date) -> IsoWeek:
        year, week, _ = day.isocalendar()
        return cls(year, week)

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def monday(self) -> dt.date:
        return dt.date.fromisocalendar(self.year, self.week, 1)

    @property
    def sunday(self) -> dt.date:
        return self.monday + dt.timedelta(days=6)

    def shifted(self, weeks: int) -> IsoWeek:
        return IsoWeek.of(self.monday + dt.timedelta(weeks=weeks))

    @property
    def label(self) -> str:
        """'3–9 Aug 2026', '27 Jul – 2 Aug 2026', '28 Dec 2026 – 3 Jan 2027'."""
        start, end = self.monday, self.sunday
        if start.year != end.year:
            return f"{start:%-d %b %Y} – {end:%-d %b %Y}"
        if start.month != end.month:
            return f"{start:%-d %b} – {end:%-d %b %Y}"
        return f"{start.day}–{end:%-d %b %Y}"

    @property
    def short_label(self) -> str:
        """'3 Aug' (the week's Monday), for chart axes."""
        return f"{self.monday:%-d %b}"


def last_complete_week(time_zone: str, now: dt.datetime) -> IsoWeek:
    """The ISO week before the organisation-local current one."""
    return IsoWeek.of(now.astimezone(ZoneInfo(time_zone)).date()).shifted(-1)


def scheduled_moment(week: IsoWeek, *, weekday: int, at: dt.time, time_zone: str) -> dt.datetime:
    """The aware moment of the schedule inside `week`, in the organisation's time zone."""
    day = week.monday + dt.timedelta(days=weekday - 1)
    return dt.datetime.combine(day, at, tzinfo=ZoneInfo(time_zone))


def due_week(
    *, time_zone: str, weekday: int, at: dt.time, now: dt.datetime, window: dt.timedelta
) -> IsoWeek | None:
    """The week whose digest is due at `now`, or None.

    Due from the scheduled moment (e.g. Monday 08:00 organisation time) for `window`; the digest then
    reports on the week before the one the moment falls in. Past the window nothing is due: an hourly
    run that was down for days does not flood inboxes with stale digests (send_digests --week can).
    """
    current = IsoWeek.of(now.astimezone(ZoneInfo(time_zone)).date())
    for week in (current, current.shifted(-1)):
        moment = scheduled_moment(week, weekday=weekday, at=at, time_zone=time_zone)
        if moment <= now:
            return week.shifted(-1) if now - moment < window else None
    return None
