"""The Celery app. Queues per kind of work so workers can scale out separately behind Redis."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendwatch.settings")

app = Celery("spendwatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = {
    "apps.ingestion.tasks.*": {"queue": "ingest"},
    "apps.usage.tasks.*": {"queue": "rollup"},
}
app.conf.task_default_queue = "ingest"
app.conf.beat_schedule = {
    "sweep-stuck-ingestion-runs": {"task": "apps.ingestion.tasks.sweep_stuck_runs", "schedule": 60.0},
    "refresh-budgets": {"task": "apps.budgets.tasks.refresh_all_budgets", "schedule": 300.0},
    "enqueue-due-pulls": {"task": "apps.ingestion.tasks.enqueue_due_pulls", "schedule": 60.0},
    "sweep-kept-payloads": {"task": "apps.ingestion.tasks.sweep_kept_payloads", "schedule": 86_400.0},
    "send-due-digests": {"task": "apps.digests.tasks.send_due_digests", "schedule": 3600.0},
}
app.autodiscover_tasks()
