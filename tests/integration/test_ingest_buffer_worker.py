"""Bodies pushed with `Prefer: respond-async` reach the ledger through a real worker on a real Redis."""

import time

import orjson
import pytest
from django.db.models import Count, Sum

from apps.accounts.models import KeyScope
from apps.accounts.services import machine_key_create
from apps.ingestion.models import BufferedRequest, IngestionRun, RunStatus
from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import litellm_record

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_single_record_pushes_are_drained_and_ingested_by_a_worker(
    celery_worker_process, client, acme, settings
):
    settings.SPENDWATCH_INGEST_BUFFER_SECONDS = 1
    worker = celery_worker_process()
    _, key = machine_key_create(organisation=acme, name="gateway", scopes=[KeyScope.INGEST])
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_PREFER": "respond-async"}

    statuses = {
        client.post(
            "/api/v1/ingest/litellm_spend_logs/",
            data=orjson.dumps(litellm_record(f"req-{i}", user=f"user{i % 7}@acme.example")),
            content_type="application/x-ndjson",
            **headers,
        ).status_code
        for i in range(300)
    }
    assert statuses == {202}

    deadline = time.monotonic() + 90
    while (
        UsageFact.objects.count() < 300 or IngestionRun.objects.exclude(status=RunStatus.COMPLETED).exists()
    ):
        assert time.monotonic() < deadline, (
            f"{UsageFact.objects.count()} of 300 facts after 90 s:\n{worker.log_text()[-3000:]}"
        )
        time.sleep(0.3)

    assert UsageFact.objects.aggregate(rows=Count("id"), cost=Sum("cost_nanos")) == {
        "rows": 300,
        "cost": 300 * 500_000,
    }
    assert DailyRollup.objects.aggregate(cost=Sum("cost_nanos"))["cost"] == 300 * 500_000
    assert not BufferedRequest.objects.filter(run__isnull=True).exists()
    # A few runs, not one per request: each drain takes every body waiting.
    assert IngestionRun.objects.count() <= 30
