"""Kept raw payloads: compressed after their run, deleted after the retention period, replayed on demand."""

import datetime as dt
import gzip
import os
from io import StringIO

import orjson
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db.models import Count, Sum
from django.utils import timezone

from apps.ingestion.adapters import get_adapter
from apps.ingestion.models import IngestionRun, RunStatus
from apps.ingestion.retention import NotReplayable, PayloadSweep, payloads_sweep, run_replay
from apps.ingestion.services import (
    ingest_files,
    payload_ingest,
    payload_keep,
    run_create,
    source_get_or_create,
)
from apps.usage.models import DailyRollup, UsageFact
from spendwatch.celery import app
from tests.conftest import litellm_record, write_jsonl

NOW = dt.datetime(2026, 9, 1, 12, 0, tzinfo=dt.UTC)


def body(prefix: str, rows: int, bad: int = 0) -> bytes:
    """`rows` LiteLLM records of $0.0005 each (500,000 nano-dollars), then `bad` unreadable lines."""
    records = [litellm_record(f"{prefix}-{i}", user=f"user{i % 3}@acme.example") for i in range(rows)]
    return b"".join(orjson.dumps(record) + b"\n" for record in records) + b'{"request_id": "broken\n' * bad


def totals() -> dict:
    return UsageFact.objects.aggregate(rows=Count("id"), cost=Sum("cost_nanos"), requests=Sum("requests"))


def age(run: IngestionRun, days: int) -> None:
    """Pretend the run (and its payload files) were made `days` days before NOW."""
    then = NOW - dt.timedelta(days=days)
    IngestionRun.objects.filter(pk=run.pk).update(created_at=then)
    IngestionRun.objects.filter(pk=run.pk, finished_at__isnull=False).update(finished_at=then)
    for name in IngestionRun.objects.get(pk=run.pk).files:
        os.utime(name, (then.timestamp(), then.timestamp()))


@pytest.fixture
def uploads(settings, tmp_path):
    settings.SPENDWATCH_UPLOAD_DIR = tmp_path / "uploads"
    settings.SPENDWATCH_PAYLOAD_RETENTION_DAYS = 90
    return tmp_path / "uploads" / "acme"


@pytest.fixture
def api_source(acme):
    return source_get_or_create(organisation=acme, name="gateway", format="litellm_spend_logs")


def push(source, payload: bytes) -> IngestionRun:
    return payload_ingest(
        source=source, format="litellm_spend_logs", payload=payload, suffix=".jsonl", idempotency_key=None
    )


def test_the_sweep_deletes_expired_payloads_compresses_the_rest_and_spares_what_it_does_not_own(
    acme, api_source, uploads, tmp_path
):
    old = push(api_source, body("old", 10))
    recent_payload = body("recent", 20, bad=1)
    recent = push(api_source, recent_payload)
    pending = run_create(
        source=api_source,
        format="litellm_spend_logs",
        paths=[payload_keep(organisation=acme, suffix=".jsonl", chunks=[body("pending", 5)])],
    )
    users_own_file = write_jsonl(tmp_path / "export.jsonl", [litellm_record("cli-1")])
    from_the_cli = ingest_files(source=api_source, format="litellm_spend_logs", paths=[users_own_file])
    stray_old = payload_keep(organisation=acme, suffix=".jsonl", chunks=[b"{}\n"])
    stray_new = payload_keep(organisation=acme, suffix=".jsonl", chunks=[b"{}\n"])
    for run in (old, pending, from_the_cli):
        age(run, 100)
    age(recent, 3)
    os.utime(stray_old, ((NOW - dt.timedelta(days=91)).timestamp(),) * 2)
    os.utime(stray_new, (NOW.timestamp(),) * 2)
    old_file = old.files[0]

    result = payloads_sweep(now=NOW)

    assert result == PayloadSweep(expired_runs=1, deleted_files=1, orphans_deleted=1, compressed_files=1)
    assert IngestionRun.objects.get(pk=old.pk).files == []
    assert not os.path.exists(old_file)
    [compressed] = IngestionRun.objects.get(pk=recent.pk).files
    assert compressed == recent.files[0] + ".gz"
    assert gzip.decompress(open(compressed, "rb").read()) == recent_payload
    assert IngestionRun.objects.get(pk=pending.pk).files == pending.files  # may still resume: untouched
    assert IngestionRun.objects.get(pk=from_the_cli.pk).files == [str(users_own_file.resolve())]
    assert users_own_file.exists()
    assert sorted(path.name for path in uploads.iterdir()) == sorted(
        [os.path.basename(compressed), os.path.basename(pending.files[0]), stray_new.name]
    )
    # The facts and counts of an expired run stay: only its payload went.
    assert IngestionRun.objects.get(pk=old.pk).summary()["accepted"] == 10
    assert totals() == {"rows": 31, "cost": 31 * 500_000, "requests": 31}

    assert payloads_sweep(now=NOW) == PayloadSweep(0, 0, 0, 0)  # the next day's sweep has nothing to do


def test_retention_zero_keeps_payloads_forever_but_still_compresses_them(api_source, uploads, settings):
    settings.SPENDWATCH_PAYLOAD_RETENTION_DAYS = 0
    run = push(api_source, body("r", 3))
    age(run, 4_000)
    IngestionRun.objects.filter(pk=run.pk).update(finished_at=NOW - dt.timedelta(days=1))

    assert payloads_sweep(now=NOW) == PayloadSweep(0, 0, 0, compressed_files=1)
    assert [path.suffix for path in uploads.iterdir()] == [".gz"]


def test_a_negative_retention_is_a_configuration_error(settings, db):
    settings.SPENDWATCH_PAYLOAD_RETENTION_DAYS = -1
    with pytest.raises(ImproperlyConfigured, match="SPENDWATCH_PAYLOAD_RETENTION_DAYS=-1"):
        payloads_sweep(now=NOW)


def test_replaying_a_compressed_payload_changes_no_total(api_source, uploads):
    first = push(api_source, body("r", 40, bad=2))
    age(first, 1)
    assert payloads_sweep(now=NOW).compressed_files == 1
    before = totals()
    assert before == {"rows": 40, "cost": 40 * 500_000, "requests": 40}

    out = StringIO()
    call_command("replay_run", str(first.pk), stdout=out)

    replay = IngestionRun.objects.exclude(pk=first.pk).get()
    assert out.getvalue().strip() == (
        f'{{"run":{replay.pk},"rows":42,"accepted":0,"duplicates":40,"replaced":0,"rejected":2}}'
    )
    assert replay.status == RunStatus.COMPLETED and replay.source_id == first.source_id
    assert totals() == before
    assert DailyRollup.objects.aggregate(rows=Sum("fact_rows"), cost=Sum("cost_nanos")) == {
        "rows": 40,
        "cost": 40 * 500_000,
    }
    # The replay has an uncompressed payload of its own; the first run's is still kept (compressed).
    [copy] = replay.files
    assert copy.endswith(".jsonl") and copy != first.files[0]
    assert len(list(uploads.iterdir())) == 2


def test_a_run_that_failed_is_replayed_after_the_fix(api_source, uploads, monkeypatch):
    adapter = get_adapter("litellm_spend_logs")

    def broken(stream, file_name):
        raise KeyError("usage_object")

    monkeypatch.setattr(adapter, "parse_columns", broken)
    failed = push(api_source, body("r", 25))
    assert (failed.status, failed.error) == (RunStatus.FAILED, "KeyError: 'usage_object'")
    assert totals()["rows"] == 0

    monkeypatch.undo()  # the fix is deployed
    replay = run_replay(run_id=failed.pk)

    assert replay.summary() == {
        "run": replay.pk,
        "rows": 25,
        "accepted": 25,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    assert totals() == {"rows": 25, "cost": 25 * 500_000, "requests": 25}


def test_an_expired_unfinished_or_unknown_run_is_not_replayed(acme, api_source, uploads):
    expired = push(api_source, body("r", 2))
    age(expired, 91)
    payloads_sweep(now=NOW)
    running = run_create(
        source=api_source,
        format="litellm_spend_logs",
        paths=[payload_keep(organisation=acme, suffix=".jsonl", chunks=[body("p", 1)])],
    )
    IngestionRun.objects.filter(pk=running.pk).update(status=RunStatus.RUNNING, heartbeat_at=timezone.now())

    with pytest.raises(NotReplayable, match=f"run {expired.pk} can no longer be replayed: its payload was"):
        run_replay(run_id=expired.pk)
    with pytest.raises(CommandError, match=f"run {running.pk} is running: only a completed or failed run"):
        call_command("replay_run", str(running.pk))
    with pytest.raises(CommandError, match="there is no run 999999"):
        call_command("replay_run", "999999")
    assert IngestionRun.objects.count() == 2  # no run was created by the refusals


def test_the_sweep_is_scheduled_daily():
    entry = app.conf.beat_schedule["sweep-kept-payloads"]
    assert entry == {"task": "apps.ingestion.tasks.sweep_kept_payloads", "schedule": 86_400.0}
    from apps.ingestion.tasks import sweep_kept_payloads

    assert sweep_kept_payloads.name == entry["task"]
