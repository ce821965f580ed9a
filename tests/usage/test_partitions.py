"""The fact table's monthly partitions (PostgreSQL; apps.usage.partitions, migration usage 0005).

Rows go to their UTC month's partition, made on the store path when it is missing; a row that lands in
the DEFAULT partition is moved into its month when that month is ensured; every writer of the ledger
(re-ingest, bucket replacement, re-pricing, deletes) works across partitions, and a query bounded by ts
reads only the partitions of its months. On SQLite only the date arithmetic runs.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.test.utils import CaptureQueriesContext

from apps.accounts.scoping import organisation_viewer
from apps.catalog.models import AIModel
from apps.catalog.repricing import Repricer
from apps.catalog.services import provider_for
from apps.dashboards.filters import Filters
from apps.dashboards.selectors import fact_page
from apps.ingestion.services import source_get_or_create
from apps.usage.models import Grain, UsageFact
from apps.usage.partitions import (
    DEFAULT_PARTITION,
    ensure_partitions,
    list_partitions,
    month_of,
    next_month,
    partition_name,
    ts_range_of_days,
)
from apps.usage.services import STORED_COLUMNS, StoreResult, _months_of, store_facts
from apps.usage.tasks import ensure_fact_partitions

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures" / "sources"
pg_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only")
OCT, NOV, DEC = dt.date(2025, 10, 1), dt.date(2025, 11, 1), dt.date(2025, 12, 1)


def at(month: dt.date, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(month.year, month.month, day, hour, tzinfo=dt.UTC)


@pytest.fixture
def world(acme):
    source = source_get_or_create(organisation=acme, name="partitions", format="litellm_spend_logs")
    model = AIModel.objects.get_or_create(provider=provider_for("openai"), name="gpt-5")[0]
    return acme, source, model


def fact(
    world, ts: dt.datetime, key: str, *, cost: int | None = 1_000, grain: int = Grain.REQUEST, tokens=100
):
    """A row in STORED_COLUMNS order."""
    organisation, source, model = world
    values = {
        "source_id": source.pk,
        "ts": ts,
        "record_key": key,
        "organisation_id": organisation.pk,
        "day": ts.date(),
        "grain": grain,
        "run_id": 0,
        "provider_id": model.provider_id,
        "model_id": model.pk,
        "input_uncached_tokens": tokens,
        "output_tokens": tokens // 10,
        "requests": 1,
        "failed": False,
        "batch": False,
        "cost_nanos": cost,
        "list_cost_nanos": cost,
    }
    return tuple(values.get(column, 0 if column.endswith("_tokens") else None) for column in STORED_COLUMNS)


def orm_fact(world, ts: dt.datetime, key: str) -> UsageFact:
    """Written past store_facts (as a bulk load or an old writer would): no partition is ensured."""
    organisation, source, model = world
    return UsageFact.objects.bulk_create(
        [
            UsageFact(
                source=source, ts=ts, record_key=key, organisation=organisation, day=ts.date(),
                grain=Grain.REQUEST, run_id=0, provider_id=model.provider_id, model=model,
                input_uncached_tokens=100, requests=1, cost_nanos=1_000, list_cost_nanos=1_000,
            )
        ]
    )[0]  # fmt: skip


def rows_by_partition() -> dict[str, int]:
    """Exact row counts of the partitions that hold rows."""
    return {part.name: part.rows for part in list_partitions(exact=True) if part.rows}


def totals() -> dict:
    return UsageFact.objects.aggregate(
        rows=Count("id"), cost=Sum("cost_nanos"), tokens=Sum("input_uncached_tokens")
    )


# --- everywhere ------------------------------------------------------------------------------------------


def test_month_arithmetic_is_in_utc():
    berlin_midnight = dt.datetime(2026, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert month_of(berlin_midnight) == dt.date(2025, 12, 1)  # 23:30 UTC on 31 December
    assert next_month(dt.date(2025, 12, 1)) == dt.date(2026, 1, 1)
    assert partition_name(dt.date(2026, 1, 1)) == "usage_usagefact_p2026_01"
    with pytest.raises(ValueError, match="naive"):
        month_of(dt.datetime(2026, 1, 1))  # noqa: DTZ001 - the naive value is the point


def test_a_range_of_local_days_becomes_a_ts_range_with_fourteen_hours_either_side():
    low, high = ts_range_of_days(dt.date(2025, 11, 10), dt.date(2025, 11, 12))
    assert low == dt.datetime(2025, 11, 9, 10, tzinfo=dt.UTC)
    assert high == dt.datetime(2025, 11, 13, 14, tzinfo=dt.UTC)


def test_a_batch_knows_its_months_as_tuples_and_as_an_arrow_table(world):
    rows = [fact(world, at(OCT, 31, 23), "a"), fact(world, at(NOV, 1, 0), "b"), fact(world, at(NOV, 9), "c")]
    assert _months_of(rows) == {OCT, NOV}
    table = pa.table({"ts": pa.array([row[1] for row in rows], pa.timestamp("us", tz="Europe/Berlin"))})
    assert _months_of(table) == {OCT, NOV}


def test_ensuring_partitions_does_nothing_without_partitioning(db):
    if connection.vendor == "postgresql":
        pytest.skip("SQLite behaviour")
    assert ensure_partitions([OCT, NOV]) == []
    assert list_partitions() == []


def test_the_beat_schedule_ensures_partitions_daily():
    from spendwatch.celery import app

    entry = app.conf.beat_schedule["ensure-fact-partitions"]
    assert entry == {"task": "apps.usage.tasks.ensure_fact_partitions", "schedule": 86_400.0}


# --- PostgreSQL ------------------------------------------------------------------------------------------


@pg_only
def test_rows_of_three_months_go_to_three_partitions(world):
    rows = [fact(world, at(OCT, day), f"o{day}") for day in (1, 15, 31)]
    rows += [fact(world, at(NOV, day), f"n{day}") for day in (1, 2, 3, 30)]
    rows += [fact(world, at(DEC, day), f"d{day}") for day in (1, 2, 3, 4, 31)]
    assert store_facts(rows).accepted == 12
    assert rows_by_partition() == {partition_name(OCT): 3, partition_name(NOV): 4, partition_name(DEC): 5}
    assert totals() == {"rows": 12, "cost": 12_000, "tokens": 1_200}


@pg_only
def test_an_overlapping_batch_adds_only_its_new_rows(world):
    first = [fact(world, at(OCT, day), f"k{day}") for day in (20, 25, 30)]
    first += [fact(world, at(NOV, day), f"k{day}") for day in (2, 4)]
    again = first[3:] + [fact(world, at(NOV, 6), "k6"), fact(world, at(DEC, 8), "k8")]
    assert store_facts(first) == StoreResult(5, 0, 0)
    assert store_facts(again) == StoreResult(accepted=2, duplicates=2, replaced=0)
    assert rows_by_partition() == {partition_name(OCT): 3, partition_name(NOV): 3, partition_name(DEC): 1}
    assert totals() == {"rows": 7, "cost": 7_000, "tokens": 700}


def litellm_export(path: Path, indexes: range) -> Path:
    """Records of the LiteLLM sample moved to Oct/Nov/Dec 2025 (record i to month i % 3), unique ids."""
    records = json.loads((FIXTURES / "litellm_spend_logs" / "spend_logs_normal.json").read_text())
    chosen = []
    for index in indexes:
        record = dict(records[index])
        start = at((OCT, NOV, DEC)[index % 3], 10 + index) + dt.timedelta(minutes=index)
        record["request_id"] = f"partition-test-{index}"
        record["startTime"] = start.isoformat()
        record["endTime"] = (start + dt.timedelta(seconds=5)).isoformat()
        record["completionStartTime"] = (start + dt.timedelta(seconds=1)).isoformat()
        chosen.append(record)
    path.write_text(json.dumps(chosen))
    return path


@pg_only
def test_re_ingesting_an_overlapping_export_changes_no_total(ingest, tmp_path):
    first = litellm_export(tmp_path / "first.json", range(0, 11))
    overlap = litellm_export(tmp_path / "overlap.json", range(5, 16))
    whole = litellm_export(tmp_path / "whole.json", range(0, 16))
    runs = [ingest("litellm_spend_logs", path, source="gateway") for path in (first, overlap, first)]
    assert [(run.accepted, run.duplicates) for run in runs] == [(11, 0), (5, 6), (0, 11)]
    once = ingest("litellm_spend_logs", whole, source="reference")
    assert (once.accepted, once.duplicates) == (16, 0)

    def source_totals(name: str) -> dict:
        return UsageFact.objects.filter(source__name=name).aggregate(
            rows=Count("id"), cost=Sum("cost_nanos"), tokens=Sum("input_uncached_tokens")
        )

    gateway = source_totals("gateway")
    assert gateway["rows"] == 16 and gateway["cost"] > 0
    assert gateway == source_totals("reference")
    # Months of records 0..15 by i % 3: six in October, five in November and December; both sources.
    assert rows_by_partition() == {partition_name(OCT): 12, partition_name(NOV): 10, partition_name(DEC): 10}


@pg_only
def test_a_row_without_its_month_lands_in_the_default_partition_and_is_moved_when_ensured(world):
    june = dt.date(2024, 6, 1)
    stray = orm_fact(world, at(june, 10), "stray")
    assert rows_by_partition() == {DEFAULT_PARTITION: 1}
    assert ensure_partitions([june]) == [partition_name(june)]
    assert rows_by_partition() == {partition_name(june): 1}
    moved = UsageFact.objects.get(record_key="stray")
    assert (moved.pk, moved.ts, moved.cost_nanos) == (stray.pk, at(june, 10), 1_000)


@pg_only
def test_the_beat_task_moves_default_rows_into_their_months(world):
    orm_fact(world, at(dt.date(2024, 3, 1), 5), "march")
    orm_fact(world, at(dt.date(2024, 4, 1), 6), "april")
    created = ensure_fact_partitions()
    assert {"usage_usagefact_p2024_03", "usage_usagefact_p2024_04"} <= set(created)
    assert rows_by_partition() == {"usage_usagefact_p2024_03": 1, "usage_usagefact_p2024_04": 1}
    this_month = partition_name(month_of(dt.datetime.now(dt.UTC)))
    assert this_month in {part.name for part in list_partitions()}
    assert ensure_fact_partitions() == []  # idempotent


@pg_only
def test_storing_into_a_month_whose_rows_sit_in_the_default_partition(world):
    august = dt.date(2024, 8, 1)
    stray = orm_fact(world, at(august, 5), "same-key")
    result = store_facts([fact(world, at(august, 5), "same-key"), fact(world, at(august, 6), "new-key")])
    assert (result.accepted, result.duplicates) == (1, 1)  # the key in the default partition was seen
    assert rows_by_partition() == {partition_name(august): 2}
    assert UsageFact.objects.get(record_key="same-key").pk == stray.pk


@pg_only
def test_ids_stay_unique_across_partitions_and_moves(world):
    orm_fact(world, at(dt.date(2024, 2, 1), 3), "early")
    ensure_partitions([dt.date(2024, 2, 1)])
    store_facts([fact(world, at(month, 7), f"m{month:%m}") for month in (OCT, NOV, DEC)])
    orm_fact(world, at(dt.date(2024, 1, 1), 9), "default")
    ids = list(UsageFact.objects.order_by("ts").values_list("id", flat=True))
    assert len(ids) == len(set(ids)) == 5
    assert ids[0] == max(ids)  # the last one written has the newest id, though it is the oldest row
    assert ids[1] < ids[2] < ids[3] < ids[4]


@pg_only
def test_grown_buckets_are_replaced_and_facts_deleted_across_partitions(world):
    hour = Grain.HOUR
    store_facts([fact(world, at(month, 3), "bucket", grain=hour, tokens=100) for month in (OCT, NOV, DEC)])
    grown = [fact(world, at(month, 3), "bucket", grain=hour, tokens=150, cost=1_500) for month in (OCT, NOV)]
    assert store_facts(grown) == StoreResult(accepted=0, duplicates=0, replaced=2)
    assert totals() == {"rows": 3, "cost": 4_000, "tokens": 400}
    # A retention-style delete of everything before December, over two partitions.
    deleted, _ = UsageFact.objects.filter(ts__lt=at(DEC, 1, 0)).delete()
    assert deleted == 2
    assert rows_by_partition() == {partition_name(DEC): 1}
    assert totals() == {"rows": 1, "cost": 1_000, "tokens": 100}


@pg_only
def test_re_pricing_updates_rows_in_every_partition(world):
    organisation = world[0]
    rows = [fact(world, at(month, day), f"{month:%m}-{day}", cost=None, tokens=1_000) for month in (OCT, NOV, DEC)
            for day in (2, 12)]  # fmt: skip
    store_facts(rows)
    Repricer(organisation.pk).run()
    # gpt-5: $1.25 per million input and $10 per million output tokens; 1,000 in + 100 out = $0.00225.
    priced = UsageFact.objects.values_list("cost_nanos", flat=True)
    assert sorted(priced) == [2_250_000] * 6
    assert totals()["cost"] == 13_500_000


@pg_only
def test_a_query_bounded_by_ts_reads_only_its_months_partitions(world):
    store_facts([fact(world, at(month, 7), f"m{month:%m}") for month in (OCT, NOV, DEC)])
    plan = UsageFact.objects.filter(ts__gte=at(NOV, 1, 0), ts__lt=at(DEC, 1, 0)).explain()
    assert partition_name(NOV) in plan
    assert (
        partition_name(OCT) not in plan and partition_name(DEC) not in plan and DEFAULT_PARTITION not in plan
    )
    # A day filter alone cannot be pruned: day is not the partition key.
    plan = UsageFact.objects.filter(day=dt.date(2025, 11, 7)).explain()
    assert all(name in plan for name in (partition_name(OCT), partition_name(NOV), DEFAULT_PARTITION))


def _explain_fact_page(organisation, start: dt.date, end: dt.date) -> tuple[str, list[int]]:
    filters = Filters(start=start, end=end, today=end)
    with CaptureQueriesContext(connection) as queries:
        page = fact_page(organisation_viewer(organisation), filters)
    ids_query = next(q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {ids_query}")
        plan = "\n".join(line for (line,) in cursor.fetchall())
    return plan, [row.record_key for row in page.facts]


@pg_only
def test_the_drill_down_reads_only_the_partitions_of_its_days(world):
    store_facts(
        [fact(world, at(month, day), f"{month:%m}-{day}") for month in (OCT, NOV, DEC) for day in (1, 10)]
    )
    plan, keys = _explain_fact_page(world[0], dt.date(2025, 11, 10), dt.date(2025, 11, 12))
    assert keys == ["11-10"]
    assert partition_name(NOV) in plan
    assert (
        partition_name(OCT) not in plan and partition_name(DEC) not in plan and DEFAULT_PARTITION not in plan
    )
    # The first day of a month may hold rows of the month before (local days east of UTC): both are read.
    plan, keys = _explain_fact_page(world[0], dt.date(2025, 11, 1), dt.date(2025, 11, 1))
    assert keys == ["11-1"]
    assert partition_name(OCT) in plan and partition_name(NOV) in plan and partition_name(DEC) not in plan
