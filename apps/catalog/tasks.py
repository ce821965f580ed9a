"""Celery entry points for prices: thin; they take ids and call services."""

from celery import shared_task
from django.db import OperationalError

from apps.catalog import services


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5, queue="rollup")
def reprice(self, run_id: int) -> dict:
    """Run a queued re-pricing (safe to deliver twice: a finished run is not run again)."""
    try:
        run = services.repricing_run_execute(run_id=run_id)
    except OperationalError as error:
        # A concurrent writer held the facts (PostgreSQL serialisation failure, SQLite busy): the
        # transaction rolled back whole, so trying again is safe.
        if self.request.retries >= self.max_retries:
            services.repricing_run_fail(run_id=run_id, error=str(error))
            raise
        raise self.retry(exc=error, countdown=5 * (self.request.retries + 1)) from error
    except Exception as error:
        services.repricing_run_fail(run_id=run_id, error=f"{type(error).__name__}: {error}")
        raise
    return {"run": run.pk, "rows_changed": run.rows_changed, "net_after_nanos": run.net_after_nanos}
