"""A task enqueued inside a transaction that rolls back is never sent (TESTPLAN B8).

Every place in the product that enqueues a task is driven here twice: inside a transaction that rolls
back (nothing may be published: the worker would look for a run, a pull or an alert that does not
exist) and inside one that commits (exactly one message, on the queue its kind of work belongs to).

The places, found with `grep -rn "\\.delay(\\|\\.apply_async(\\|send_task\\|delay_on_commit"`:

  apps/ingestion/services.py   upload_ingest          process_run.delay_on_commit
  apps/ingestion/pull_views.py pull_source_now        pull_source.delay_on_commit
  apps/catalog/services.py     repricing_run_request  on_commit(reprice.delay)
  apps/org/services.py         attribution_run_request on_commit(reattribute.apply_async)
  apps/budgets/services.py     state_refresh          on_commit(deliver_alerts.delay) when it raises one
  apps/ingestion/tasks.py      sweep_stuck_runs, enqueue_due_pulls: .delay() from beat's own tasks, in
                               autocommit (no enclosing transaction); their writes are committed first.

Messages go to an in-memory broker of this process and are counted on Celery's `before_task_publish`
signal, so the test needs no services and runs on both passes of `make test`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from celery.signals import before_task_publish
from django.db import transaction
from django.urls import reverse

from apps.accounts.scoping import organisation_viewer
from apps.budgets import services as budgets
from apps.budgets.models import Alert
from apps.catalog import services as catalog
from apps.ingestion import pulls
from apps.ingestion.models import IngestionRun
from apps.ingestion.services import source_get_or_create, upload_ingest
from apps.ingestion.tasks import sweep_stuck_runs
from apps.org import services as org
from spendwatch.celery import app
from tests.budgets.conftest import ONE, limit_on
from tests.conftest import litellm_record, write_jsonl
from tests.conftest_services import app_using_broker
from tests.ingestion.pulls.conftest import CANARY, KEY_A

pytestmark = pytest.mark.django_db(transaction=True)

AUGUST = dt.datetime(2026, 8, 10, 10, 0, tzinfo=dt.UTC)


class RolledBack(Exception):
    """Raised to roll the test's transaction back."""


@pytest.fixture
def published(settings, tmp_path) -> Iterator[list[tuple[str, str]]]:
    """(task name, queue) of every message this process publishes while the test runs."""
    settings.SPENDWATCH_UPLOAD_DIR = tmp_path / "uploads"
    settings.SPENDWATCH_CREDENTIAL_KEYS = [KEY_A]
    sent: list[tuple[str, str]] = []

    def record(sender=None, headers=None, routing_key=None, **kwargs) -> None:
        sent.append((headers["task"], routing_key))

    before_task_publish.connect(record, weak=False)
    try:
        with app_using_broker(app, "memory://"):
            yield sent
    finally:
        before_task_publish.disconnect(record)


def rolled_back(action) -> None:
    with pytest.raises(RolledBack), transaction.atomic():
        action()
        raise RolledBack


def committed(action):
    with transaction.atomic():
        return action()


def upload(acme):
    source = source_get_or_create(organisation=acme, name="uploads", format="litellm_spend_logs")
    body = b'{"request_id": "r1"}\n'
    return upload_ingest(source=source, format="litellm_spend_logs", uploads=[("logs.jsonl", [body])])


def test_an_upload_queues_its_run_only_once_committed(published, acme):
    rolled_back(lambda: upload(acme))
    assert published == []
    assert IngestionRun.objects.count() == 0

    run = committed(lambda: upload(acme))
    assert published == [("apps.ingestion.tasks.process_run", "ingest")]
    assert IngestionRun.objects.get().pk == run.pk


def test_pull_now_queues_the_pull_only_once_committed(published, acme, as_persona):
    source = pulls.pull_source_create(
        organisation=acme, name="openai-admin", provider="openai", credential=CANARY, kinds=["openai_usage"]
    )
    client = as_persona("cio")
    url = reverse("ingestion:pull-now", args=[source.pk])

    def press() -> None:
        response = client.post(url)
        assert (response.status_code, response.get("Location")) == (302, reverse("ingestion:pulls"))

    rolled_back(press)
    assert published == []
    committed(press)
    assert published == [("apps.ingestion.tasks.pull_source", "ingest")]


def test_a_repricing_is_queued_only_once_committed(published, acme):
    editor = catalog.PriceEditor(viewer=organisation_viewer(acme), label="finance@acme.example")

    def request():
        return catalog.repricing_run_request(editor, reason="new list prices", since=None, model_ids=None)

    rolled_back(request)
    assert published == []
    committed(request)
    assert published == [("apps.catalog.tasks.reprice", "rollup")]


def test_a_reattribution_is_queued_only_once_committed(published, acme):
    def request():
        return org.attribution_run_request(organisation_id=acme.pk, reason="new rules")

    rolled_back(request)
    assert published == []
    committed(request)
    assert published == [("apps.org.tasks.reattribute", "rollup")]


def test_an_alert_delivery_is_queued_only_once_the_alert_is_committed(
    published, acme, teams, people, ingest, tmp_path
):
    limit_on(
        budgets.Actor(viewer=organisation_viewer(acme), label="tests"), team=teams["platform"], amount=5 * ONE
    )
    records = [
        litellm_record(f"a{n}", user="alice@acme.example", startTime=AUGUST.isoformat()) for n in range(3)
    ]
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "alice.jsonl", records))  # 60 % of the limit
    published.clear()  # only what the refresh below sends counts

    def refresh():
        return budgets.state_refresh(organisation_id=acme.pk, now=AUGUST + dt.timedelta(days=2))

    rolled_back(refresh)
    assert published == []
    assert Alert.objects.count() == 0
    committed(refresh)
    assert published == [("apps.budgets.tasks.deliver_alerts", "digest")]
    assert list(Alert.objects.values_list("threshold", flat=True)) == [50]


def test_the_sweeper_never_sends_a_run_that_was_rolled_back(published, acme, settings):
    settings.SPENDWATCH_RUN_STALE_SECONDS = 0
    rolled_back(lambda: upload(acme))
    assert (sweep_stuck_runs(), published) == ([], [])
