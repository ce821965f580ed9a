"""The narrow rollups hold exactly the ledger's money, follow every refresh, and never fail an ingestion."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.core.management import call_command
from django.db.models import Sum

from apps.dashboards import services
from apps.dashboards.models import (
    MEASURES,
    DayPerson,
    DayPersonModel,
    DayPersonTask,
    DayTeamModel,
    DayTeamTask,
    MonthPerson,
)
from apps.usage.models import DailyRollup
from apps.usage.services import refresh_rollups
from tests.conftest import litellm_record, write_jsonl

NARROW_DAY_TABLES = (DayTeamModel, DayTeamTask, DayPerson, DayPersonModel, DayPersonTask)
# Measures the daily rollup has under the same name (counted_cost_nanos is the narrow tables' own).
SHARED = tuple(measure for measure in MEASURES if measure != "counted_cost_nanos")


def per_day(model, organisation_id: int, dimension: str = "day") -> dict:
    rows = (
        model.objects.filter(organisation_id=organisation_id)
        .values(dimension)
        .annotate(**{measure: Sum(measure) for measure in SHARED})
        .order_by(dimension)
    )
    return {row[dimension]: {measure: row[measure] for measure in SHARED} for row in rows}


def per_month(organisation_id: int) -> dict:
    months: dict[dt.date, dict] = {}
    for day, sums in per_day(DailyRollup, organisation_id).items():
        month = months.setdefault(day.replace(day=1), dict.fromkeys(SHARED))
        for measure, value in sums.items():
            if value is not None:
                month[measure] = (month[measure] or 0) + value
    return months


def test_every_narrow_table_holds_the_ledgers_money_day_by_day(demo):
    organisation_id = demo.organisation.pk
    ledger = per_day(DailyRollup, organisation_id)
    assert len(ledger) == 90
    assert sum(day["cost_nanos"] for day in ledger.values()) > 1_000 * 10**9  # a real amount, not zeros
    for table in NARROW_DAY_TABLES:
        assert per_day(table, organisation_id) == ledger, table.__name__
    assert per_day(MonthPerson, organisation_id, "month") == per_month(organisation_id)


def test_narrow_tables_are_narrower_than_the_ledgers_rollup(demo):
    organisation_id = demo.organisation.pk
    full = DailyRollup.objects.filter(organisation_id=organisation_id).count()
    for table in (*NARROW_DAY_TABLES, MonthPerson):
        assert table.objects.filter(organisation_id=organisation_id).count() < full, table.__name__
    # Four calendar months touched by 90 days: one row per person and team per month at most.
    assert MonthPerson.objects.filter(organisation_id=organisation_id).values("month").distinct().count() == 4


def test_the_cost_of_counted_requests_leaves_out_rows_without_a_request_count(demo):
    organisation_id = demo.organisation.pk
    counted = DailyRollup.objects.filter(organisation_id=organisation_id, requests__isnull=False).aggregate(
        total=Sum("cost_nanos")
    )["total"]
    uncounted = DailyRollup.objects.filter(organisation_id=organisation_id, requests__isnull=True).aggregate(
        total=Sum("cost_nanos")
    )["total"]
    assert uncounted  # the OpenAI bill's part the gateway logs do not explain has no request count
    for table in (*NARROW_DAY_TABLES, MonthPerson):
        total = table.objects.filter(organisation_id=organisation_id).aggregate(
            total=Sum("counted_cost_nanos")
        )
        assert total["total"] == counted, table.__name__


def test_refreshing_the_same_days_again_changes_nothing(demo):
    organisation_id = demo.organisation.pk
    before = {table: per_day(table, organisation_id) for table in NARROW_DAY_TABLES}
    counts = {table: table.objects.count() for table in (*NARROW_DAY_TABLES, MonthPerson)}
    days = list(per_day(DailyRollup, organisation_id))
    written = services.refresh_narrow_rollups(organisation_id=organisation_id, days=days)
    assert written == sum(counts.values())
    assert {table: per_day(table, organisation_id) for table in NARROW_DAY_TABLES} == before
    assert {table: table.objects.count() for table in counts} == counts


def test_a_late_row_updates_its_day_and_month_through_the_ledgers_refresh(
    ingest, people, tmp_path, django_capture_on_commit_callbacks
):
    early = [litellm_record("e1", user="alice@acme.example", startTime="2026-08-03T10:00:00+00:00")]
    late = [litellm_record("l1", user="bob@acme.example", startTime="2026-07-30T09:00:00+00:00")]
    with django_capture_on_commit_callbacks(execute=True):
        ingest("litellm_spend_logs", write_jsonl(tmp_path / "early.jsonl", early))
    organisation_id = people["alice"].organisation_id
    assert per_day(DayPerson, organisation_id) == per_day(DailyRollup, organisation_id)
    assert set(per_day(DayPerson, organisation_id)) == {dt.date(2026, 8, 3)}

    with django_capture_on_commit_callbacks(execute=True):
        ingest("litellm_spend_logs", write_jsonl(tmp_path / "late.jsonl", late))
    assert set(per_day(DayPerson, organisation_id)) == {dt.date(2026, 7, 30), dt.date(2026, 8, 3)}
    months = per_day(MonthPerson, organisation_id, "month")
    assert {month: sums["cost_nanos"] for month, sums in months.items()} == {
        dt.date(2026, 7, 1): 500_000,
        dt.date(2026, 8, 1): 500_000,
    }
    assert list(
        MonthPerson.objects.filter(month=dt.date(2026, 7, 1)).values_list("person_id", flat=True)
    ) == [people["bob"].pk]


def test_a_day_the_ledger_no_longer_has_is_removed_by_a_rebuild(demo):
    organisation_id = demo.organisation.pk
    gone = dt.date(2026, 10, 1)
    DailyRollup.objects.filter(organisation_id=organisation_id, day=gone).delete()
    call_command("refresh_dashboard_rollups", "--organisation", demo.organisation.slug, stdout=None)
    for table in NARROW_DAY_TABLES:
        assert not table.objects.filter(organisation_id=organisation_id, day=gone).exists()
        assert per_day(table, organisation_id) == per_day(DailyRollup, organisation_id)
    assert per_day(MonthPerson, organisation_id, "month") == per_month(organisation_id)


def test_a_failed_narrow_refresh_is_logged_and_does_not_fail_the_ingestion(
    ingest, people, tmp_path, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "refresh_narrow_rollups", broken)
    records = [litellm_record("x1", user="alice@acme.example")]
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        run = ingest("litellm_spend_logs", write_jsonl(tmp_path / "x.jsonl", records))
    assert run.summary()["accepted"] == 1
    assert DailyRollup.objects.count() == 1 and DayPerson.objects.count() == 0
    assert "dashboard rollup refresh failed for organisation" in caplog.text
    monkeypatch.undo()
    call_command("refresh_dashboard_rollups", stdout=None)
    assert per_day(DayPerson, people["alice"].organisation_id) == per_day(
        DailyRollup, people["alice"].organisation_id
    )


def test_refresh_rollups_announces_its_days_once_committed(
    ingest, people, tmp_path, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ingest(
            "litellm_spend_logs",
            write_jsonl(tmp_path / "a.jsonl", [litellm_record("a1", user="alice@acme.example")]),
        )
    organisation_id = people["alice"].organisation_id
    DayTeamModel.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        refresh_rollups(organisation_id=organisation_id, days=[dt.date(2026, 8, 3)])
    assert DayTeamModel.objects.count() == 0  # nothing before the commit
    for callback in callbacks:
        callback()
    assert DayTeamModel.objects.filter(day=dt.date(2026, 8, 3)).aggregate(total=Sum("cost_nanos")) == {
        "total": 500_000
    }


@pytest.mark.parametrize(
    ("day", "month_end"),
    [(dt.date(2026, 2, 1), dt.date(2026, 2, 28)), (dt.date(2028, 2, 1), dt.date(2028, 2, 29)),
     (dt.date(2026, 12, 1), dt.date(2026, 12, 31)), (dt.date(2026, 4, 1), dt.date(2026, 4, 30))],
)  # fmt: skip
def test_month_end(day, month_end):
    assert services.month_end(day) == month_end
