"""SIGTERM (Celery's warm shutdown) while a worker is in the middle of an ingestion run (TESTPLAN B7).

What a deploy or a scale-down does: the worker stops taking messages, lets the running task finish, and
exits. Decided behaviour: the running run completes in full (never half-applied: its summary and the
ledger add up exactly); a message the worker had only reserved is given back to the broker unacknowledged
(acks_late) and a worker started afterwards runs it. Nothing is lost and nothing is counted twice.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time

import pytest
from django.db.models import Count, Sum

from apps.ingestion.models import RunStatus
from apps.ingestion.services import run_create, source_get_or_create
from apps.ingestion.tasks import process_run, sweep_stuck_runs
from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import litellm_record, write_jsonl
from tests.integration.waiting import state_of, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

BIG_ROWS = 30_000
NEXT_ROWS = 700
COST = 500_000  # nano-dollars per litellm_record
WORKER_ENV = {"SPENDWATCH_INGEST_BATCH_ROWS": "2000"}


def test_a_warm_shutdown_finishes_the_running_run_and_hands_back_the_next(
    celery_worker_process, acme, tmp_path
):
    records = (
        litellm_record(f"big-{i}", startTime=f"2026-08-{1 + i % 28:02d}T10:00:00+00:00")
        for i in range(BIG_ROWS)
    )
    gateway = source_get_or_create(organisation=acme, name="gateway", format="litellm_spend_logs")
    big = run_create(
        source=gateway, format="litellm_spend_logs", paths=[write_jsonl(tmp_path / "big.jsonl", records)]
    )
    other = source_get_or_create(organisation=acme, name="other", format="litellm_spend_logs")
    next_path = write_jsonl(tmp_path / "next.jsonl", [litellm_record(f"next-{i}") for i in range(NEXT_ROWS)])
    waiting = run_create(source=other, format="litellm_spend_logs", paths=[next_path])

    first = celery_worker_process(concurrency=1, env=WORKER_ENV)
    process_run.delay(big.pk)
    wait_until(lambda: state_of(big.pk).rows >= 4_000, 60, "the big run to be under way")
    process_run.delay(waiting.pk)  # reserved by the busy worker (prefetch 1), not started
    under_way = state_of(big.pk).rows

    first.kill(signal.SIGTERM)
    assert first.wait(timeout=120) == 0  # it waited for the task, then exited cleanly
    log = first.log_text()
    assert "worker: Warm shutdown" in log
    done = state_of(big.pk)
    assert under_way < BIG_ROWS, "the shutdown came after the run had finished: nothing was tested"
    assert done.status == RunStatus.COMPLETED, done.error
    assert (done.attempts, done.rows, done.accepted, done.duplicates) == (1, BIG_ROWS, BIG_ROWS, 0)
    assert state_of(waiting.pk).status == RunStatus.PENDING  # not started by a worker on its way out

    celery_worker_process(concurrency=1, env=WORKER_ENV)  # the message was handed back: no sweeper needed
    finished = wait_until(lambda: state_of(waiting.pk).status == RunStatus.COMPLETED, 60, "the next run")
    assert finished
    assert state_of(waiting.pk).summary()["accepted"] == NEXT_ROWS

    totals = {"rows": BIG_ROWS + NEXT_ROWS, "cost": (BIG_ROWS + NEXT_ROWS) * COST}
    assert UsageFact.objects.aggregate(rows=Count("id"), cost=Sum("cost_nanos")) == totals
    assert UsageFact.objects.values("source_id", "record_key").distinct().count() == BIG_ROWS + NEXT_ROWS
    assert DailyRollup.objects.aggregate(rows=Sum("fact_rows"), cost=Sum("cost_nanos")) == totals


# --- `make soak`: kill -9 at random points (TESTPLAN B1, T3) ------------------------------------------

SOAK_KILLS = int(os.environ.get("SPENDWATCH_B1_KILLS", "0"))
SOAK_ROWS = int(os.environ.get("SPENDWATCH_B1_ROWS", "100000"))


@pytest.mark.skipif(not SOAK_KILLS, reason="a `make soak` drill: set SPENDWATCH_B1_KILLS")
def test_kill_9_at_random_points_never_loses_or_doubles_a_row(
    celery_worker_process, acme, tmp_path, settings
):
    """Each round: a new run of SOAK_ROWS rows; kill -9 the pool child (odd rounds) or the whole worker
    (even rounds) once a random share of it is committed; a fresh worker and the sweeper finish it."""
    settings.SPENDWATCH_RUN_STALE_SECONDS = 2  # this process runs the sweeper
    env = {"SPENDWATCH_INGEST_BATCH_ROWS": "5000", "SPENDWATCH_RUN_STALE_SECONDS": "2"}
    rng = random.Random(int(os.environ.get("SPENDWATCH_B1_SEED", str(time.time_ns()))))
    worker = celery_worker_process(env=env)
    for kill in range(SOAK_KILLS):
        records = (
            litellm_record(f"k{kill}-{i}", startTime=f"2026-08-{1 + i % 28:02d}T10:00:00+00:00")
            for i in range(SOAK_ROWS)
        )
        source = source_get_or_create(organisation=acme, name=f"gateway-{kill}", format="litellm_spend_logs")
        path = write_jsonl(tmp_path / f"kill-{kill}.jsonl", records)
        run = run_create(source=source, format="litellm_spend_logs", paths=[path])
        kill_at = rng.randrange(1, SOAK_ROWS)
        process_run.delay(run.pk)
        wait_until(
            lambda run=run, at=kill_at: (
                state_of(run.pk).rows >= at or state_of(run.pk).status == RunStatus.COMPLETED
            ),
            300,
            "the kill point",
        )
        children = worker.child_pids()
        if kill % 2 == 0:
            for child in children:
                os.kill(child, signal.SIGKILL)
        else:
            worker.kill(signal.SIGKILL)
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            worker = celery_worker_process(env=env)
        time.sleep(2.5)  # the heartbeat goes stale
        sweep_stuck_runs()
        wait_until(
            lambda run=run: state_of(run.pk).status == RunStatus.COMPLETED,
            600,
            f"run {run.pk} after kill {kill + 1}",
        )
        print(
            f"kill {kill + 1}: at {kill_at} rows, {'pool child' if kill % 2 == 0 else 'main process'}: exact"
        )
        done = state_of(run.pk)
        assert (done.rows, done.accepted, done.duplicates, done.rejected) == (SOAK_ROWS, SOAK_ROWS, 0, 0)
        facts = UsageFact.objects.filter(source=source)
        assert facts.aggregate(rows=Count("id"), cost=Sum("cost_nanos")) == {
            "rows": SOAK_ROWS,
            "cost": SOAK_ROWS * COST,
        }
        assert facts.values("record_key").distinct().count() == SOAK_ROWS
    total = SOAK_KILLS * SOAK_ROWS
    assert DailyRollup.objects.aggregate(rows=Sum("fact_rows"), cost=Sum("cost_nanos")) == {
        "rows": total,
        "cost": total * COST,
    }
