"""Attribution: the cast of tests/conftest.py plus usage from raw identities that nothing maps yet.

Day 1 (2026-08-03) and day 2 (2026-08-04), gpt-4.1-mini at ONE per request unless noted:
  alice@acme.example (a person: Platform)      a1, a2 (day 1), a3 (day 2)               3 rows  1,500,000
  key alias "billing-bot" (nothing maps it)     k1, k2 (day 1), k3 (day 2, BIG)          3 rows  3,100,000
                                                k4 (day 2, an unknown model: unpriced)   1 row           0
  gateway team "team-pay" (nothing maps it)     g1, g2 (day 1)                           2 rows  1,000,000
  dave@acme.example (not a person)              d1 (day 2)                               1 row     500,000
  bob@acme.example, tag "code-review" (no task) t1 (day 1)                               1 row     500,000
                                                                                        11 rows  6,600,000
"""

from __future__ import annotations

import pytest
from django.db.models import Count, Sum

from apps.accounts.scoping import organisation_viewer
from apps.org.services import Editor
from apps.usage.models import DailyRollup, UsageFact
from spendwatch.celery import app
from tests.conftest import litellm_record, write_jsonl

ONE = 500_000  # gpt-4.1-mini: 800 uncached + 200 cached input + 100 output
BIG = 2_100_000  # the same with 1,100 output tokens
TOTAL_NANOS = 6_600_000
TOTAL_ROWS = 11
DAY1, DAY2 = "2026-08-03T10:00:00+00:00", "2026-08-04T10:00:00+00:00"


def record(request_id: str, when: str = DAY1, *, output: int = 100, alias: str = "", **overrides) -> dict:
    base = litellm_record(request_id, startTime=when, **overrides)
    usage = {**base["metadata"]["usage_object"], "completion_tokens": output}
    base["completion_tokens"] = output
    base["metadata"] = {**base["metadata"], "usage_object": usage}
    if alias:
        base["metadata"]["user_api_key_alias"] = alias
    return base


@pytest.fixture
def usage(ingest, people, tmp_path):
    records = [
        record("a1", user="alice@acme.example"),
        record("a2", user="alice@acme.example"),
        record("a3", DAY2, user="alice@acme.example"),
        record("k1", api_key="sk-hash-1", alias="billing-bot"),
        record("k2", api_key="sk-hash-1", alias="billing-bot"),
        record("k3", DAY2, api_key="sk-hash-1", alias="billing-bot", output=1_100),
        record("k4", DAY2, api_key="sk-hash-1", alias="billing-bot", model="mystery-model-x"),
        record("g1", team_id="team-pay"),
        record("g2", team_id="team-pay"),
        record("d1", DAY2, user="dave@acme.example"),
        record("t1", user="bob@acme.example", request_tags=["task:code-review"]),
    ]
    run = ingest("litellm_spend_logs", write_jsonl(tmp_path / "usage.jsonl", records))
    assert run.accepted == TOTAL_ROWS
    return run


@pytest.fixture
def jobs_run_inline(django_capture_on_commit_callbacks):
    """Queued re-attribution runs execute in-process when the change commits (workers: tests/integration)."""
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield lambda: django_capture_on_commit_callbacks(execute=True)
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


@pytest.fixture
def finops(acme) -> Editor:
    return Editor(viewer=organisation_viewer(acme), label="tests")


def fact_totals(by: str) -> dict:
    """{owner id: (rows, nanos)} from the fact table, by team_id, person_id or task_id."""
    return {
        row[by]: (row["rows"], row["nanos"] or 0)
        for row in UsageFact.objects.values(by).annotate(rows=Count("id"), nanos=Sum("cost_nanos"))
    }


def rollup_totals(by: str) -> dict:
    return {
        row[by]: (row["rows"], row["nanos"] or 0)
        for row in DailyRollup.objects.values(by).annotate(rows=Sum("fact_rows"), nanos=Sum("cost_nanos"))
    }


def owner_of(record_key: str) -> tuple:
    return UsageFact.objects.values_list("team_id", "person_id", "task_id").get(record_key=record_key)


def count_sql(fragment: str, queries) -> int:
    return sum(1 for query in queries if fragment in query["sql"])
