"""A request rate limit per provider key, shared by every worker process through the database.

Each request first reserves a send time on the key's schedule row (RateLimitSlot): in one short
transaction it takes the row's `next_at`, moves it one interval on, and commits; the caller then sleeps
until its reserved moment. Reservations are serialised by the row lock (SELECT ... FOR UPDATE on
PostgreSQL; SQLite's IMMEDIATE transactions take the write lock at BEGIN), so however many processes
pull with the same key, their requests leave at least one interval apart. Celery's `rate_limit` cannot do
this: it counts per worker.

The interval is (1 s + margin) / rate. The margin absorbs the difference between when a request was
scheduled and when it reaches the provider (sleep overshoot, scheduling, network): rate + 1 consecutive
requests span at least 1 s + margin of schedule, so the provider never sees more than `rate` requests in
any one-second window unless that difference exceeds the margin.

The database rather than Redis: it is there in every deployment (SQLite included), a reservation is one
indexed row update, and provider admin APIs are asked a few times a second at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from apps.ingestion.models import RateLimitSlot


def interval_seconds(requests_per_second: float, margin_ms: int) -> float:
    if requests_per_second <= 0:
        raise ValueError("requests per second must be positive")
    return (1.0 + margin_ms / 1000.0) / requests_per_second


def reserve(key: str, *, interval: float, clock: Callable[[], float] = time.time) -> float:
    """Reserve the next send time for `key`; returns how many seconds to wait before sending."""
    with transaction.atomic():
        RateLimitSlot.objects.get_or_create(key=key)
        slot = RateLimitSlot.objects.select_for_update().get(key=key)
        now = clock()
        send_at = max(now, slot.next_at)
        RateLimitSlot.objects.filter(pk=slot.pk).update(next_at=send_at + interval)
    return max(0.0, send_at - now)


def acquire(
    key: str,
    *,
    requests_per_second: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until a request with this key may be sent under the configured per-key rate."""
    rate = requests_per_second or settings.SPENDWATCH_PULL_REQUESTS_PER_SECOND
    wait = reserve(key, interval=interval_seconds(rate, settings.SPENDWATCH_PULL_RATE_MARGIN_MS))
    if wait > 0:
        sleep(wait)
