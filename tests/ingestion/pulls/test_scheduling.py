"""The beat entry, due pulls from the database, and at most one pull per source at a time (TESTPLAN B6)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from apps.ingestion import pulls, tasks
from apps.ingestion.models import PullEndpoint, PullSource
from apps.usage.models import UsageFact
from spendwatch.celery import app
from tests.ingestion.pulls.conftest import NOW, OPENAI_USAGE_PAGES, pull
from tests.ingestion.pulls.fakeprovider import Reply, Seen, paged

PAGE_1, PAGE_2 = (path.read_bytes() for path in OPENAI_USAGE_PAGES)


def test_one_beat_entry_enqueues_due_pulls_every_minute():
    entry = app.conf.beat_schedule["enqueue-due-pulls"]
    assert entry == {"task": "apps.ingestion.tasks.enqueue_due_pulls", "schedule": 60.0}
    assert "apps.ingestion.tasks.enqueue_due_pulls" in app.tasks
    assert "apps.ingestion.tasks.pull_source" in app.tasks


@pytest.mark.django_db
def test_a_due_slot_is_enqueued_once_and_again_after_the_interval(make_pull_source, monkeypatch):
    source = make_pull_source("http://127.0.0.1:9")
    paused = make_pull_source("http://127.0.0.1:9", name="paused")
    PullSource.objects.filter(pk=paused.pk).update(enabled=False)
    sent: list[tuple] = []
    monkeypatch.setattr(tasks.pull_source, "delay", lambda *args, **kwargs: sent.append((args, kwargs)))

    assert tasks.enqueue_due_pulls() == [source.pk]
    assert tasks.enqueue_due_pulls() == []  # the slot was claimed: a second beat tick sends nothing

    assert sent == [((source.pk,), {})]  # the id only: no credential ever travels in a message
    source.refresh_from_db()
    assert abs((source.next_pull_at - timezone.now()) - dt.timedelta(minutes=60)) < dt.timedelta(seconds=5)
    later = timezone.now() + dt.timedelta(minutes=61)
    assert pulls.due_pull_ids(now=later) == [source.pk]


@pytest.mark.django_db
def test_a_live_lease_makes_a_second_pull_stand_aside_and_an_expired_one_is_taken_over(
    make_pull_source, fake_provider
):
    server = fake_provider(paged([PAGE_1, PAGE_2]))
    source = make_pull_source(server.url)
    PullSource.objects.filter(pk=source.pk).update(
        lease_token="other-worker", lease_expires_at=timezone.now() + dt.timedelta(minutes=5)
    )

    busy = pull(source)

    assert (busy.busy, busy.summary()["status"], server.requests) == (True, "busy", [])

    # The other worker died: once its lease expires, the source is pulled again.
    PullSource.objects.filter(pk=source.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert pull(source).status == "ok"
    assert len(server.requests) == 2
    assert PullSource.objects.filter(pk=source.pk, lease_token="").exists()


@pytest.mark.django_db(transaction=True)
def test_b6_two_workers_picking_the_same_source_at_once_run_one_pull(make_pull_source, fake_provider):
    pages = paged([PAGE_1, PAGE_2])

    def slow(seen: Seen) -> Reply:
        reply = pages(seen)
        reply.delay = 0.3  # long enough for the two pulls to overlap
        return reply

    server = fake_provider(slow)
    source = make_pull_source(server.url)
    start = threading.Barrier(2)
    results: list[pulls.PullResult] = []

    def worker() -> None:
        try:
            start.wait()
            results.append(pulls.pull_run(source_id=source.pk, now=NOW))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(result.summary()["status"] for result in results) == ["busy", "ok"]
    assert len(server.requests) == 2  # one pull's two pages, not two pulls' four
    data_source = PullEndpoint.objects.get(pull_source=source).data_source
    totals = UsageFact.objects.filter(source=data_source).aggregate(rows=Count("id"), cost=Sum("cost_nanos"))
    assert totals == {"rows": 21, "cost": 51_072_706_800}
