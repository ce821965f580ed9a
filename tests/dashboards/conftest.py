"""Usage for the dashboard tests, loaded through the real pipeline with its on-commit work run.

The narrow rollups follow the ledger's daily rollup through a signal sent when the ingestion's
transaction commits; a test transaction never commits, so the fixtures run those callbacks explicitly.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.ingestion.demo import load_demo
from apps.org.models import Task
from tests.conftest import litellm_record, write_jsonl

DEMO_TODAY = dt.date(2026, 11, 20)
DEMO_SCALE = 0.01  # about 2,400 fact rows over 90 days: every shape of the demo, in a few seconds
ONE = 500_000  # nano-dollars per request of the `usage` fixture (gpt-4.1-mini, 800 + 200 cached + 100 out)


@pytest.fixture
def usage(ingest, people, tmp_path, django_capture_on_commit_callbacks):
    """Today: alice 3 requests (code review), bob 2, carol 1, and 1 from an unknown gateway user."""
    Task.objects.create(organisation=people["alice"].organisation, key="code-review", name="Code review")
    now = timezone.now().replace(microsecond=0).isoformat()
    records = [
        *(
            litellm_record(
                f"a{i}", user="alice@acme.example", startTime=now, request_tags=["task:code-review"]
            )
            for i in range(3)
        ),
        *(litellm_record(f"b{i}", user="bob@acme.example", startTime=now) for i in range(2)),
        litellm_record("c0", user="carol@acme.example", startTime=now),
        litellm_record("u0", user="stranger@elsewhere.example", startTime=now),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        ingest("litellm_spend_logs", write_jsonl(tmp_path / "today.jsonl", records))


@pytest.fixture
def demo(db, tmp_path, settings, django_capture_on_commit_callbacks):
    """Northwind Trading (apps.ingestion.demo) at a small scale, narrow rollups refreshed."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with django_capture_on_commit_callbacks(execute=True):
        return load_demo(DEMO_TODAY, scale=DEMO_SCALE, directory=tmp_path)
