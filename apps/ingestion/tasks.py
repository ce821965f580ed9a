"""Celery entry points: thin and idempotent; they take ids and call services."""

from celery import shared_task

from apps.ingestion import services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def process_run(run_id: int) -> dict:
    return services.run_process(run_id=run_id).summary()


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
