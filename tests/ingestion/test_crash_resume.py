"""A run whose worker dies resumes after its last committed batch: exact totals and counters (B1, B2, B4)."""

import datetime as dt

import pytest
from django.db.models import Count, Sum
from django.utils import timezone

from apps.ingestion import services
from apps.ingestion.models import IngestionRun, RejectedRow, RunStatus
from apps.ingestion.pipeline import Pipeline
from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import litellm_record, write_jsonl


class WorkerDied(BaseException):
    """Not an Exception: like SIGKILL, nothing in the pipeline gets to handle it."""


@pytest.fixture
def two_files(tmp_path):
    first = [
        litellm_record(f"a{i}", startTime=f"2026-08-{1 + i % 5:02d}T10:00:00+00:00") for i in range(2_500)
    ]
    first[1_234] = b'{"not json'
    second = [litellm_record(f"b{i}") for i in range(1_500)]
    second[99] = b"[]"
    return [write_jsonl(tmp_path / "one.jsonl", first), write_jsonl(tmp_path / "two.jsonl", second)]


def test_a_run_killed_mid_file_resumes_without_counting_anything_twice(
    acme, two_files, settings, monkeypatch
):
    settings.SPENDWATCH_INGEST_BATCH_ROWS = 1_000
    source = services.source_get_or_create(organisation=acme, name="gw", format="litellm_spend_logs")
    run = services.run_create(source=source, format="litellm_spend_logs", paths=two_files)

    commit_batch = Pipeline._commit_batch
    batches = {"n": 0}

    def dies_on_the_fourth_batch(self, *args, **kwargs):
        batches["n"] += 1
        if batches["n"] == 4:
            raise WorkerDied
        return commit_batch(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "_commit_batch", dies_on_the_fourth_batch)
    with pytest.raises(WorkerDied):
        services.run_process(run_id=run.pk)
    monkeypatch.setattr(Pipeline, "_commit_batch", commit_batch)

    crashed = IngestionRun.objects.get(pk=run.pk)
    # Batches do not span files: 1,000 + 1,000 + 500 lines of file one committed, file two's first died.
    assert (crashed.status, crashed.resume_file, crashed.resume_line, crashed.rows) == (
        RunStatus.RUNNING,
        0,
        2_500,
        2_500,
    )
    assert services.run_process(run_id=run.pk).status == RunStatus.RUNNING  # still alive: left alone
    assert services.stuck_run_ids() == []

    IngestionRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    assert services.stuck_run_ids() == [run.pk]
    done = services.run_process(run_id=run.pk)

    assert done.status == RunStatus.COMPLETED and done.attempts == 2
    assert done.summary() == {
        "run": run.pk,
        "rows": 4_000,
        "accepted": 3_998,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 2,
    }
    assert RejectedRow.objects.count() == 2
    totals = {"n": 3_998, "cost": 3_998 * 500_000}
    assert UsageFact.objects.aggregate(n=Count("id"), cost=Sum("cost_nanos")) == totals
    # The rollups cover the days of the batches committed before the crash too.
    assert DailyRollup.objects.aggregate(n=Sum("fact_rows"), cost=Sum("cost_nanos")) == totals


def test_a_run_that_keeps_dying_is_failed_after_its_attempts(acme, two_files, settings):
    settings.SPENDWATCH_RUN_MAX_ATTEMPTS = 2
    source = services.source_get_or_create(organisation=acme, name="gw", format="litellm_spend_logs")
    run = services.run_create(source=source, format="litellm_spend_logs", paths=two_files)
    IngestionRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, attempts=2, heartbeat_at=timezone.now() - dt.timedelta(hours=1)
    )
    failed = services.run_process(run_id=run.pk)
    assert (failed.status, failed.error) == (RunStatus.FAILED, "gave up after 2 attempts")
    assert UsageFact.objects.count() == 0
