"""Celery entry points of the ledger: thin and idempotent."""

from celery import shared_task

from apps.usage.partitions import ensure_upcoming_partitions


@shared_task
def ensure_fact_partitions() -> list[str]:
    """Daily: make this month's and the next two months' fact partitions before rows need them, and move
    any row that fell into the default partition into its month's. Returns the partitions created."""
    return ensure_upcoming_partitions()
