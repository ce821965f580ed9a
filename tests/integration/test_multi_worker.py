"""Several workers on several queues (the layout for several machines behind one Redis).

- Three `celery worker` processes consume the ingest queue at once, ingesting overlapping files into
  one source: the ledger holds each natural key once and the totals to the nano-dollar; rollups equal
  the facts; the runs' summaries add up.
- A worker started with `-Q rollup` never executes an ingestion task; one on `-Q ingest` then does.
- Each task is routed to its queue (spendwatch/celery.py).
"""

from __future__ import annotations

import time

import pytest
from django.db.models import Count, Sum

from apps.ingestion.models import IngestionRun, RunStatus
from apps.ingestion.services import run_create, source_get_or_create
from apps.ingestion.tasks import process_run
from apps.org.models import AttributionRun, AttributionRunStatus
from apps.org.services import attribution_run_request
from apps.usage.models import DailyRollup, UsageFact
from spendwatch.celery import app
from tests.conftest import litellm_record, write_jsonl

FILES = 6
FILE_ROWS = 3_000
STEP = 1_500  # file k holds records [k × STEP, k × STEP + FILE_ROWS): each overlaps the next by half
DISTINCT = (FILES - 1) * STEP + FILE_ROWS  # 10,500
COST = 500_000  # nano-dollars per litellm_record
UNCACHED, CACHED, OUTPUT = 800, 200, 100  # tokens per litellm_record


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.1)
    return value


def test_every_task_goes_to_its_queue():
    app.loader.import_default_modules()  # every app's tasks module, as a worker imports them
    route = app.amqp.router.route
    queues = {name: route({}, name, (), {})["queue"].name for name in app.tasks if name.startswith("apps.")}
    assert queues == {
        "apps.budgets.tasks.deliver_alerts": "digest",
        "apps.budgets.tasks.refresh_all_budgets": "rollup",
        "apps.catalog.tasks.reprice": "rollup",
        "apps.digests.tasks.send_due_digests": "digest",
        "apps.ingestion.tasks.drain_ingest_buffer": "ingest",
        "apps.ingestion.tasks.enqueue_due_pulls": "ingest",
        "apps.ingestion.tasks.process_run": "ingest",
        "apps.ingestion.tasks.pull_source": "ingest",
        "apps.ingestion.tasks.sweep_ingest_receipts": "ingest",
        "apps.ingestion.tasks.sweep_kept_payloads": "ingest",
        "apps.ingestion.tasks.sweep_stuck_runs": "ingest",
        "apps.org.tasks.reattribute": "rollup",
        "apps.usage.tasks.ensure_fact_partitions": "rollup",
    }


@pytest.mark.django_db(transaction=True)
def test_three_workers_ingesting_overlapping_files_at_once_keep_totals_exact(
    celery_worker_process, acme, tmp_path
):
    workers = [
        celery_worker_process(queues=["ingest"], env={"SPENDWATCH_INGEST_BATCH_ROWS": "500"})
        for _ in range(3)
    ]
    source = source_get_or_create(organisation=acme, name="gateway", format="litellm_spend_logs")
    runs = []
    for k in range(FILES):
        records = [
            litellm_record(f"req-{i}", startTime=f"2026-08-{1 + i % 7:02d}T10:00:00+00:00")
            for i in range(k * STEP, k * STEP + FILE_ROWS)
        ]
        path = write_jsonl(tmp_path / f"export-{k}.jsonl", records)
        runs.append(run_create(source=source, format="litellm_spend_logs", paths=[path]))
    for run in runs:
        process_run.delay(run.pk)

    for run in runs:
        wait_until(
            lambda run=run: (
                IngestionRun.objects.get(pk=run.pk).status in (RunStatus.COMPLETED, RunStatus.FAILED)
            ),
            120,
            f"run {run.pk}",
        )
    done = list(IngestionRun.objects.filter(pk__in=[run.pk for run in runs]))
    assert {run.status for run in done} == {RunStatus.COMPLETED}, [run.error for run in done]
    assert sum(run.accepted for run in done) == DISTINCT
    assert sum(run.duplicates for run in done) == FILES * FILE_ROWS - DISTINCT
    assert sum(run.replaced + run.rejected for run in done) == 0
    serving = [worker for worker in workers if "process_run[" in worker.log_text()]
    assert len(serving) >= 2, "the runs were not shared between workers: nothing concurrent was tested"

    facts = UsageFact.objects.aggregate(
        rows=Count("id"),
        cost=Sum("cost_nanos"),
        uncached=Sum("input_uncached_tokens"),
        cached=Sum("cache_read_tokens"),
        output=Sum("output_tokens"),
    )
    assert facts == {
        "rows": DISTINCT,
        "cost": DISTINCT * COST,
        "uncached": DISTINCT * UNCACHED,
        "cached": DISTINCT * CACHED,
        "output": DISTINCT * OUTPUT,
    }
    assert UsageFact.objects.values("record_key").distinct().count() == DISTINCT  # 0 duplicate natural keys
    rollups = DailyRollup.objects.aggregate(rows=Sum("fact_rows"), cost=Sum("cost_nanos"))
    assert rollups == {"rows": DISTINCT, "cost": DISTINCT * COST}
    by_day = dict(DailyRollup.objects.values_list("day").annotate(cost=Sum("cost_nanos")).order_by("day"))
    facts_by_day = {day: rows * COST for day, rows in _facts_per_day().items()}
    assert by_day == facts_by_day


def _facts_per_day() -> dict:
    from django.db.models.functions import TruncDate

    return dict(UsageFact.objects.annotate(d=TruncDate("ts")).values_list("d").annotate(n=Count("id")))


@pytest.mark.django_db(transaction=True)
def test_a_rollup_only_worker_never_runs_ingestion(celery_worker_process, acme, tmp_path):
    rollup = celery_worker_process(queues=["rollup"])
    source = source_get_or_create(organisation=acme, name="gateway", format="litellm_spend_logs")
    path = write_jsonl(tmp_path / "logs.jsonl", [litellm_record(f"req-{i}") for i in range(50)])
    run = run_create(source=source, format="litellm_spend_logs", paths=[path])

    process_run.delay(run.pk)
    reattribution = attribution_run_request(organisation_id=acme.pk, reason="routing", enqueue=False)
    from apps.org.tasks import reattribute

    reattribute.delay(reattribution.pk)  # the rollup queue's own work: it runs
    wait_until(
        lambda: "apps.org.tasks.reattribute" in rollup.log_text() and "succeeded" in rollup.log_text(),
        30,
        "the re-attribution on the rollup worker",
    )
    assert AttributionRun.objects.get(pk=reattribution.pk).status == AttributionRunStatus.DONE
    time.sleep(2)
    assert "process_run[" not in rollup.log_text()  # no task of that name was received
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.PENDING

    ingest = celery_worker_process(queues=["ingest"])
    wait_until(
        lambda: IngestionRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED, 30, "the ingest worker"
    )
    assert "process_run[" in ingest.log_text() and "process_run[" not in rollup.log_text()
