"""Celery entry points: thin, take ids, safe to run twice (alert delivery claims each alert first)."""

from celery import shared_task

from apps.budgets import services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def deliver_alerts(organisation_id: int) -> dict:
    summary = services.alerts_deliver(organisation_id=organisation_id)
    return {"sent": summary.sent, "failed": summary.failed, "retry": summary.retry}


@shared_task
def refresh_all_budgets() -> int:
    """Scheduled: what time alone changes (a new period begins, forecasts move on a day) and retries.

    Spend itself is refreshed by each ingestion; this recomputes no stored day, only new periods.
    """
    organisation_ids = services.organisations_with_limits()
    for organisation_id in organisation_ids:
        services.state_refresh(organisation_id=organisation_id, days=())
        services.alerts_deliver(organisation_id=organisation_id)
    return len(organisation_ids)
