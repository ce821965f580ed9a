"""Celery entry points: thin and idempotent; they take ids and call services."""

import logging

from celery import shared_task
from django.conf import settings

from apps.ingestion import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def process_run(self, run_id: int, resume_attempt: int | None = None) -> dict:
    """Process a run. A transient error (database or broker unreachable) is retried with doubling backoff,
    SPENDWATCH_RUN_MAX_ATTEMPTS executions in all; any other error has already failed the run (TESTPLAN B5).
    """
    try:
        run = services.run_process(run_id=run_id, retry_transient=True, resume_attempt=resume_attempt)
        return run.summary()
    except services.RunInterrupted as interrupted:
        resume_attempt, error = interrupted.attempt, interrupted
    except services.TRANSIENT_ERRORS as unreachable:
        error = unreachable  # the claim itself failed: the run was not touched
    retries = self.request.retries
    max_retries = settings.SPENDWATCH_RUN_MAX_ATTEMPTS - 1
    if retries >= max_retries:
        # Stop here rather than loop: the run is still recorded as unfinished, and the sweeper resumes it
        # from the database once its heartbeat goes stale.
        logger.error("ingestion run %s: no retry left after %s: %s", run_id, type(error).__name__, error)
        raise error
    raise self.retry(
        args=(),
        kwargs={"run_id": run_id, "resume_attempt": resume_attempt},
        countdown=services.run_retry_delay(retries),
        max_retries=max_retries,
        exc=error,
    )


@shared_task
def drain_ingest_buffer() -> list[int]:
    """Move the bodies buffered by `Prefer: respond-async` into runs, and queue those (apps/ingestion/buffer.py)."""
    from apps.ingestion import buffer

    return buffer.buffer_drain()


@shared_task
def sweep_stuck_runs() -> list[int]:
    """Re-enqueue runs whose worker died or whose message was lost (scheduled by beat)."""
    run_ids = services.stuck_run_ids()
    for run_id in run_ids:
        process_run.delay(run_id)
    return run_ids


@shared_task(acks_late=True, reject_on_worker_lost=True)
def pull_source(source_id: int) -> dict:
    """Pull one source's endpoints (takes the id only: the credential never travels in a message)."""
    from apps.ingestion import pulls

    return pulls.pull_run(source_id=source_id).summary()


@shared_task
def enqueue_due_pulls() -> list[int]:
    """Every minute (beat): enqueue the pulls that are due; the schedule lives in the database."""
    from apps.ingestion import pulls

    source_ids = pulls.due_pull_ids()
    for source_id in source_ids:
        pull_source.delay(source_id)
    return source_ids


@shared_task
def sweep_kept_payloads() -> dict:
    """Daily (beat): compress finished runs' kept payloads, delete those past their retention period."""
    from apps.ingestion import retention

    return retention.payloads_sweep().as_dict()


@shared_task
def sweep_ingest_receipts() -> int:
    """Daily (beat): forget the receipts of buffered bodies whose run finished days ago."""
    from apps.ingestion import buffer

    return buffer.receipts_sweep()
