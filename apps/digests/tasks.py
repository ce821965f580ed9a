"""Celery entry points: thin. Safe to run twice and side by side: the sent ledger decides who gets what."""

from celery import shared_task

from apps.digests import services


@shared_task
def send_due_digests() -> list[dict]:
    """Hourly (spendwatch/celery.py): each organisation's digests once its weekly moment has come."""
    return [summary.as_dict() for summary in services.send_due_digests()]
