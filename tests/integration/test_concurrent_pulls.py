"""Two worker processes pick the same source's scheduled pull at once (TESTPLAN B6).

tests/ingestion/pulls/test_scheduling.py races two threads of one process; here two real `celery worker`
processes, each with its own database connection, take one `pull_source` message each for the same
source, against the fake provider on 127.0.0.1. The lease on the PullSource row lets one pull run; the
other stands aside ("busy") without a single request to the provider. The ledger holds the sample's
totals once.

The workers run on today's clock, so the source's backfill reaches back to 3 August 2026, the sample's
first bucket: the window that contains it gets the two sample pages, every later window an empty page.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.db.models import Count, Sum
from django.utils import timezone

from apps.ingestion import pulls
from apps.ingestion.models import PullEndpoint, PullSource
from apps.ingestion.tasks import pull_source
from apps.usage.models import UsageFact
from tests.ingestion.pulls.conftest import CANARY, KEY_A, OPENAI_USAGE_PAGES
from tests.ingestion.pulls.fakeprovider import FakeProvider, Reply, Seen, paged

pytestmark = pytest.mark.django_db(transaction=True)

AUG_3 = 1785715200  # 2026-08-03 00:00 UTC, the sample's first bucket
EMPTY_PAGE = {"object": "page", "data": [], "has_more": False, "next_page": None}
SAMPLE_TOTALS = {"rows": 21, "cost": 51_072_706_800, "requests": 19_605}  # tests/ingestion/pulls
WORKER_ENV = {
    "SPENDWATCH_CREDENTIAL_KEYS": KEY_A,
    "SPENDWATCH_PULL_REQUESTS_PER_SECOND": "1000",
    "SPENDWATCH_PULL_RATE_MARGIN_MS": "0",
    "SPENDWATCH_PULL_BACKOFF_BASE_MS": "50",
    "SPENDWATCH_PULL_BACKOFF_CAP_MS": "400",
    "SPENDWATCH_PULL_TIMEOUT_SECONDS": "5",
}


def sample_then_empty(delay: float):
    pages = paged([path.read_bytes() for path in OPENAI_USAGE_PAGES])

    def handler(seen: Seen) -> Reply:
        start, end = int(seen.param("start_time") or 0), int(seen.param("end_time") or 0)
        reply = pages(seen) if seen.param("page") or start <= AUG_3 < end else Reply(200, EMPTY_PAGE)
        reply.delay = delay  # slow enough for the two pulls to overlap
        return reply

    return handler


def test_two_workers_taking_the_same_pull_at_once_run_it_once(
    celery_worker_process, acme, settings, tmp_path
):
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_A]
    env = {**WORKER_ENV, "SPENDWATCH_UPLOAD_DIR": str(tmp_path / "uploads")}
    workers = [celery_worker_process(queues=["ingest"], env=env) for _ in range(2)]
    backfill = (timezone.now().date() - dt.date(2026, 8, 3)).days
    with FakeProvider(sample_then_empty(delay=0.5)) as server:
        source = pulls.pull_source_create(
            organisation=acme,
            name="openai-admin",
            provider="openai",
            credential=CANARY,
            kinds=["openai_usage"],
            base_url=server.url,
            backfill_days=backfill,
        )
        pull_source.delay(source.pk)
        pull_source.delay(source.pk)

        deadline = time.monotonic() + 90
        while sum(log.count("apps.ingestion.tasks.pull_source[") for log in logs(workers)) < 4:
            assert time.monotonic() < deadline, "\n\n".join(logs(workers))  # received + succeeded, each
            time.sleep(0.2)
        requests = list(server.requests)

    outcomes = sorted(
        "busy" if "'status': 'busy'" in log else "ok" if "'status': 'ok'" in log else "?"
        for log in logs(workers)
    )
    assert outcomes == ["busy", "ok"], "\n\n".join(logs(workers))  # one message each, one pull ran
    first_window = [
        seen for seen in requests if seen.param("start_time") == str(AUG_3) and not seen.param("page")
    ]
    assert len(first_window) == 1  # the provider was asked for the first window once, not twice
    assert sum(1 for seen in requests if seen.param("page")) == 1  # and for its second page once

    data_source = PullEndpoint.objects.get(pull_source=source).data_source
    totals = UsageFact.objects.filter(source=data_source).aggregate(
        rows=Count("id"), cost=Sum("cost_nanos"), requests=Sum("requests")
    )
    assert totals == SAMPLE_TOTALS
    assert PullSource.objects.filter(pk=source.pk, lease_token="", lease_expires_at=None).exists()


def logs(workers) -> list[str]:
    return [worker.log_text() for worker in workers]
