"""What a pulled endpoint is: where it lives, how a time range is asked for and paged, and which buckets
a page holds (for the cursor). Reading the records inside a page is the adapter's job, never this one's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from apps.ingestion.credentials import Secret

DAY = dt.timedelta(days=1)


def floor_day(moment: dt.datetime) -> dt.datetime:
    moment = moment.astimezone(dt.UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_day(moment: dt.datetime) -> dt.datetime:
    floor = floor_day(moment)
    return floor if floor == moment else floor + DAY


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Window:
    """A half-open UTC range [start, end) asked for in one paged request sequence."""

    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class Endpoint:
    kind: str  # the adapter format its pages are read with
    path: str
    max_buckets: int  # daily buckets per request (the API's `limit` maximum for 1d)
    group_by: tuple[str, ...] = ()
    group_by_param: str = "group_by"

    def windows(self, start: dt.datetime, end: dt.datetime) -> Iterator[Window]:
        """Consecutive windows of at most `max_buckets` days: progress is saved after each one."""
        step = dt.timedelta(days=self.max_buckets)
        while start < end:
            yield Window(start, min(start + step, end))
            start += step

    def params(self, window: Window) -> list[tuple[str, str]]:
        raise NotImplementedError

    def bucket_ends(self, page: dict, window: Window) -> list[dt.datetime]:
        """The end of every bucket on the page (unreadable ones are skipped: they never move the cursor)."""
        raise NotImplementedError

    def _group_params(self) -> list[tuple[str, str]]:
        return [(self.group_by_param, name) for name in self.group_by]


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    endpoints: tuple[Endpoint, ...]

    def auth_headers(self, secret: Secret) -> dict[str, str]:
        raise NotImplementedError

    def endpoint(self, kind: str) -> Endpoint:
        for endpoint in self.endpoints:
            if endpoint.kind == kind:
                return endpoint
        raise LookupError(f"{self.name} has no endpoint {kind!r}")
