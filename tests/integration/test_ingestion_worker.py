"""An ingestion run processed by a real `celery worker` process, reached through a real Redis."""

import time

import pytest
from django.db.models import Count, Sum

from apps.ingestion.models import IngestionRun, RunStatus
from apps.ingestion.services import run_create, source_get_or_create
from apps.ingestion.tasks import process_run
from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import litellm_record, write_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for_status(run_id: int, status: str, timeout: float = 60) -> IngestionRun:
    deadline = time.monotonic() + timeout
    while True:
        run = IngestionRun.objects.get(pk=run_id)
        if run.status == status:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is {run.status}, not {status}, after {timeout}s"
        time.sleep(0.2)


def test_a_worker_ingests_a_run_and_a_redelivered_task_changes_nothing(celery_worker_process, acme, tmp_path):
    worker = celery_worker_process()
    records = [litellm_record(f"req-{i}", user=f"user{i % 7}@acme.example") for i in range(5_000)]
    records[100] = b'{"request_id": "broken"'
    path = write_jsonl(tmp_path / "gateway.jsonl", records)
    source = source_get_or_create(organisation=acme, name="gateway", format="litellm_spend_logs")
    run = run_create(source=source, format="litellm_spend_logs", paths=[path])

    process_run.delay(run.pk)
    done = wait_for_status(run.pk, RunStatus.COMPLETED)

    assert done.summary() == {
        "run": run.pk,
        "rows": 5_000,
        "accepted": 4_999,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 1,
    }
    expected = {"rows": 4_999, "cost": 4_999 * 500_000, "requests": 4_999}
    assert (
        UsageFact.objects.aggregate(rows=Count("id"), cost=Sum("cost_nanos"), requests=Sum("requests"))
        == expected
    )
    assert DailyRollup.objects.aggregate(
        rows=Sum("fact_rows"), cost=Sum("cost_nanos"), requests=Sum("requests")
    ) == (expected)

    # A second delivery of the same task (a redelivery after a lost ack) leaves the completed run alone.
    process_run.delay(run.pk)
    worker.wait_for_log("succeeded", timeout=30)
    time.sleep(1)
    assert IngestionRun.objects.get(pk=run.pk).summary() == done.summary()
    assert UsageFact.objects.count() == 4_999
