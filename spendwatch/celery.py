"""The Celery app. Queues per kind of work so workers can scale out separately behind Redis.

Three queues, so each machine's worker consumes only the work it is sized for (`celery worker -Q ...`):

- ingest   ingestion runs, scheduled pulls and the sweepers that re-enqueue them: I/O and CPU per file;
- rollup   rewrites of aggregates: rollups, re-pricing, re-attribution and budget state refreshes;
- digest   outbound messages: weekly digests and budget alert deliveries (SMTP, webhooks, Chromium).

Everything not routed here goes to `ingest`. A single machine runs one worker on all three (scripts/run.sh).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendwatch.settings")

# How often beat sweeps for ingestion runs nobody is working on (a lost broker message, a dead worker).
# A run is recovered within this interval plus SPENDWATCH_RUN_STALE_SECONDS of its last sign of life.
RUN_SWEEP_SECONDS = float(os.environ.get("SPENDWATCH_RUN_SWEEP_SECONDS", "60"))

app = Celery("spendwatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = {
    "apps.ingestion.tasks.*": {"queue": "ingest"},
    "apps.usage.tasks.*": {"queue": "rollup"},
    "apps.catalog.tasks.*": {"queue": "rollup"},
    "apps.org.tasks.*": {"queue": "rollup"},
    "apps.budgets.tasks.refresh_all_budgets": {"queue": "rollup"},
    "apps.budgets.tasks.deliver_alerts": {"queue": "digest"},
    "apps.digests.tasks.*": {"queue": "digest"},
}
app.conf.task_default_queue = "ingest"
app.conf.beat_schedule = {
    "sweep-stuck-ingestion-runs": {
        "task": "apps.ingestion.tasks.sweep_stuck_runs",
        "schedule": RUN_SWEEP_SECONDS,
    },
    "refresh-budgets": {"task": "apps.budgets.tasks.refresh_all_budgets", "schedule": 300.0},
    # A safety net: each buffered body asks for a drain itself; this catches a message the broker lost.
    "drain-ingest-buffer": {"task": "apps.ingestion.tasks.drain_ingest_buffer", "schedule": 60.0},
    "sweep-ingest-receipts": {"task": "apps.ingestion.tasks.sweep_ingest_receipts", "schedule": 86_400.0},
    "enqueue-due-pulls": {"task": "apps.ingestion.tasks.enqueue_due_pulls", "schedule": 60.0},
    "sweep-kept-payloads": {"task": "apps.ingestion.tasks.sweep_kept_payloads", "schedule": 86_400.0},
    "send-due-digests": {"task": "apps.digests.tasks.send_due_digests", "schedule": 3600.0},
    "ensure-fact-partitions": {"task": "apps.usage.tasks.ensure_fact_partitions", "schedule": 86_400.0},
}
app.autodiscover_tasks()
