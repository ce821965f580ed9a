"""Celery entry points for attribution: thin; they take ids and call services."""

from celery import shared_task
from django.db import OperationalError

from apps.org import services
from apps.org.reattribution import PlanDrift


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5)
def reattribute(self, run_id: int) -> dict:
    """Run a queued re-attribution (safe to deliver twice: a finished run is not run again)."""
    try:
        run = services.attribution_run_execute(run_id=run_id)
    except (OperationalError, PlanDrift) as error:
        # A concurrent ingestion wrote facts meanwhile (PostgreSQL serialisation failure, SQLite busy):
        # the transaction rolled back whole, so trying again is safe.
        if self.request.retries >= self.max_retries:
            services.attribution_run_fail(run_id=run_id, error=str(error))
            raise
        raise self.retry(exc=error, countdown=5 * (self.request.retries + 1)) from error
    except Exception as error:
        services.attribution_run_fail(run_id=run_id, error=f"{type(error).__name__}: {error}")
        raise
    return {"run": run.pk, "rows_moved": run.rows_moved, "nanos_moved": run.nanos_moved}
