"""kill -9 of a worker in the middle of a 100,000-row run, then recovery (TESTPLAN B1, B2, B4)."""

import os
import signal
import time

import pytest
from django.db.models import Count, Sum

from apps.ingestion.models import IngestionRun, RunStatus
from apps.ingestion.services import run_create, source_get_or_create
from apps.ingestion.tasks import process_run, sweep_stuck_runs
from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import litellm_record, write_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROWS = 100_000
WORKER_ENV = {"SPENDWATCH_INGEST_BATCH_ROWS": "5000", "SPENDWATCH_RUN_STALE_SECONDS": "2"}


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def run_state(run_id: int) -> IngestionRun:
    return IngestionRun.objects.get(pk=run_id)


@pytest.fixture
def big_run(acme, tmp_path, settings):
    settings.SPENDWATCH_RUN_STALE_SECONDS = 2  # this (test) process runs the sweeper
    records = [
        litellm_record(f"req-{i}", startTime=f"2026-08-{1 + i % 28:02d}T10:00:00+00:00") for i in range(ROWS)
    ]
    path = write_jsonl(tmp_path / "big.jsonl", records)
    source = source_get_or_create(organisation=acme, name="gateway", format="litellm_spend_logs")
    return run_create(source=source, format="litellm_spend_logs", paths=[path])


def assert_exact(run_id: int) -> None:
    done = run_state(run_id)
    assert done.status == RunStatus.COMPLETED, done.error
    assert done.summary() == {
        "run": run_id,
        "rows": ROWS,
        "accepted": ROWS,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    totals = {"n": ROWS, "cost": ROWS * 500_000}
    assert UsageFact.objects.aggregate(n=Count("id"), cost=Sum("cost_nanos")) == totals
    assert UsageFact.objects.values("record_key").distinct().count() == ROWS  # no duplicate natural key
    assert DailyRollup.objects.aggregate(n=Sum("fact_rows"), cost=Sum("cost_nanos")) == totals


def test_killing_the_pool_child_mid_run_loses_and_doubles_nothing(celery_worker_process, big_run):
    worker = celery_worker_process(env=WORKER_ENV)
    process_run.delay(big_run.pk)
    wait_until(lambda: run_state(big_run.pk).rows >= 20_000, 120, "some committed batches")

    children = worker.child_pids()
    assert children, "the prefork pool has a child"
    for child in children:
        os.kill(child, signal.SIGKILL)
    time.sleep(2.5)  # the heartbeat goes stale
    assert run_state(big_run.pk).status == RunStatus.RUNNING
    sweep_stuck_runs()  # re-enqueued from the database, not trusted to the broker
    wait_until(lambda: run_state(big_run.pk).status == RunStatus.COMPLETED, 180, "the run to complete")
    assert_exact(big_run.pk)
    assert run_state(big_run.pk).attempts >= 2


def test_killing_the_worker_main_process_then_starting_a_new_one(celery_worker_process, big_run):
    first = celery_worker_process(env=WORKER_ENV)
    process_run.delay(big_run.pk)
    wait_until(lambda: run_state(big_run.pk).rows >= 20_000, 120, "some committed batches")
    children = first.child_pids()
    first.kill(signal.SIGKILL)
    for child in children:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    committed = run_state(big_run.pk).rows
    assert 0 < committed < ROWS

    celery_worker_process(env=WORKER_ENV)
    time.sleep(2.5)
    sweep_stuck_runs()
    wait_until(lambda: run_state(big_run.pk).status == RunStatus.COMPLETED, 180, "the run to complete")
    assert_exact(big_run.pk)
