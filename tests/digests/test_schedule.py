"""The hourly beat sends each organisation's digests at its own Monday 08:00 (or its own schedule)."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.digests import services, tasks
from apps.digests.models import DigestDelivery, DigestSchedule
from apps.org.models import Organisation
from spendwatch.celery import app
from tests.digests.conftest import EXPECTED_RECIPIENTS

pytestmark = pytest.mark.django_db


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def sent(now, only: str | None = None) -> list[tuple[str, str]]:
    summaries = services.send_due_digests(now=now)
    return [(s.organisation, s.week) for s in summaries if s.sent and only in (None, s.organisation)]


def test_the_organisations_time_zone_decides_when_monday_0800_is(acme, readers, weeks_of_usage, smtp_server):
    Organisation.objects.filter(pk=acme.pk).update(time_zone="America/New_York")

    assert sent(utc(2026, 8, 10, 8, 0), only="acme") == []  # 04:00 in New York
    assert sent(utc(2026, 8, 10, 11, 59), only="acme") == []  # 07:59
    assert sent(utc(2026, 8, 10, 12, 0), only="acme") == [("acme", "2026-W32")]  # 08:00
    assert sent(utc(2026, 8, 10, 13, 0), only="acme") == []  # the next hour: all sent already
    assert [
        email for email in smtp_server.recipients if email.endswith("@acme.example")
    ] == EXPECTED_RECIPIENTS
    assert set(DigestDelivery.objects.values_list("week", flat=True)) == {"2026-W32"}


def test_each_organisation_keeps_its_own_schedule(acme, readers, weeks_of_usage, smtp_server):
    globex = Organisation.objects.get(slug="globex")
    Organisation.objects.filter(pk=globex.pk).update(time_zone="Pacific/Auckland")
    DigestSchedule.objects.create(organisation=acme, weekday=5, send_time=dt.time(16, 30))  # Friday, UTC

    # Monday 08:00 in Auckland is Sunday 20:00 UTC: Globex's digest goes out, Acme's waits for Friday.
    assert sent(utc(2026, 8, 9, 20, 0)) == [("globex", "2026-W32")]
    assert sent(utc(2026, 8, 14, 16, 29)) == []
    assert sent(utc(2026, 8, 14, 16, 30)) == [("acme", "2026-W32")]
    assert "cio@globex.example" in smtp_server.recipients


def test_a_disabled_schedule_sends_nothing(acme, readers, weeks_of_usage, smtp_server):
    DigestSchedule.objects.create(organisation=acme, enabled=False)
    assert ("acme", "2026-W32") not in sent(utc(2026, 8, 10, 8, 0))
    assert not DigestDelivery.objects.filter(organisation=acme).exists()


def test_the_beat_runs_the_task_every_hour(acme, readers, weeks_of_usage, smtp_server, monkeypatch):
    entry = app.conf.beat_schedule["send-due-digests"]
    assert (entry["task"], entry["schedule"]) == ("apps.digests.tasks.send_due_digests", 3600.0)
    assert entry["task"] in app.tasks
    monkeypatch.setattr(services.timezone, "now", lambda: utc(2026, 8, 10, 8, 5))
    result = tasks.send_due_digests.apply().get()
    assert [(row["organisation"], row["week"], row["sent"]) for row in result] == [
        ("acme", "2026-W32", 6),
        ("globex", "2026-W32", 1),
    ]
