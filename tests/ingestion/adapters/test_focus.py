"""FinOps FOCUS CSV: billing rows whose EffectiveCost is the cost (never re-priced); tokens from the
consumed quantity, their kind from the SKU's price details or meter.

Expected figures come from the files (csv.DictReader, Decimal), not from the adapter.
"""

import csv
import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

from django.db.models import Sum

from apps.ingestion.models import RejectedRow, RunStatus
from apps.usage.models import Grain, UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "focus"
NORMAL = DIR / "focus_1_3_export_normal.csv"
REEXPORT = DIR / "focus_reexport_grown.csv"
QUIRKS = DIR / "focus_quirks.csv"
MISSING_COLUMNS = DIR / "focus_missing_columns.csv"

METERS = {
    "Input Tokens": "input",
    "Output Tokens": "output",
    "Cache Read Input Tokens": "cache_read",
    "Cache Write Input Tokens (5m)": "cache_write_5m",
    "Cache Write Input Tokens (1h)": "cache_write_1h",
}
KINDS = ("input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "cost", "reported")


def stored() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        input=Sum("input_uncached_tokens"),
        cache_read=Sum("cache_read_tokens"),
        cache_write_5m=Sum("cache_write_5m_tokens"),
        cache_write_1h=Sum("cache_write_1h_tokens"),
        output=Sum("output_tokens"),
        cost=Sum("cost_nanos"),
        reported=Sum("reported_cost_nanos"),
    )
    return {row.pop("model__name"): row for row in rows}


def read(path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def expected_from(*paths) -> dict[str, dict]:
    """Per model; a charge (period, workspace, SKU price, description) re-exported replaces the earlier one."""
    charges = {}
    for path in paths:
        for row in read(path):
            charges[
                (row["ChargePeriodStart"], row["SubAccountId"], row["SkuPriceId"], row["ChargeDescription"])
            ] = row
    totals: dict[str, dict] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    for row in charges.values():
        details = json.loads(row["SkuPriceDetails"] or "{}")
        model = totals[details.get("x_ModelId", row["ChargeDescription"])]
        if row["ConsumedUnit"] == "Tokens":
            model[METERS[row["SkuMeter"]]] += int(row["ConsumedQuantity"])
        amount = int(Decimal(row["EffectiveCost"]) * 10**9)
        model["cost"] += amount
        model["reported"] += amount
    return dict(totals)


def test_the_export_is_stored_as_billed(ingest):
    run = ingest("focus", NORMAL)

    assert (run.rows, run.accepted, run.duplicates, run.replaced, run.rejected) == (69, 69, 0, 0, 0)
    assert stored() == expected_from(NORMAL)
    rows = read(NORMAL)
    # Pay-as-you-go tokens: EffectiveCost equals BilledCost on every row, so the bill is the cost.
    assert all(row["EffectiveCost"] == row["BilledCost"] for row in rows)
    billed = sum(Decimal(row["BilledCost"]) for row in rows)
    assert UsageFact.objects.aggregate(cost=Sum("cost_nanos"))["cost"] == int(billed * 10**9)
    assert set(UsageFact.objects.values_list("grain", flat=True)) == {Grain.DAY}
    assert set(UsageFact.objects.values_list("requests", flat=True)) == {None}
    assert UsageFact.objects.filter(batch=True).count() == 6  # the Sonnet 4 batch rows, 2 a day
    search = UsageFact.objects.filter(model__name="Web Search Usage")
    assert search.aggregate(tokens=Sum("input_uncached_tokens"), cost=Sum("cost_nanos")) == {
        "tokens": 0,  # requests, not tokens
        "cost": sum(int(Decimal(r["EffectiveCost"]) * 10**9) for r in rows if r["SkuId"] == "web_search"),
    }
    fact = (
        UsageFact.objects.filter(model__name="claude-haiku-4-5-20251001")
        .exclude(cache_write_1h_tokens=0)
        .first()
    )
    assert fact.raw_identity.fields == {
        "project": "wrkspc_01DATAsc1ence8RtYu6IoPa",
        "gateway_team": "data-science",
    }

    again = ingest("focus", NORMAL)
    assert (again.accepted, again.duplicates, again.replaced) == (0, 69, 0)
    assert stored() == expected_from(NORMAL)


def test_a_reexport_with_a_grown_day_replaces_it_in_either_order(ingest):
    ingest("focus", NORMAL, source="first")
    reexport = ingest("focus", REEXPORT, source="first")
    # 08-05 again (one charge grew) in another column order, with a BOM and CRLF, plus three 08-06 rows.
    assert (reexport.rows, reexport.accepted, reexport.duplicates, reexport.replaced) == (26, 3, 22, 1)

    early = ingest("focus", REEXPORT, source="second")
    late = ingest("focus", NORMAL, source="second")
    assert (early.accepted, late.accepted, late.duplicates, late.replaced) == (26, 46, 23, 0)

    expected = expected_from(NORMAL, REEXPORT)
    for source in ("first", "second"):
        facts = UsageFact.objects.filter(source__name=source)
        assert facts.count() == 72
        assert facts.aggregate(cost=Sum("cost_nanos"))["cost"] == sum(m["cost"] for m in expected.values())
        grown = facts.get(
            ts=dt.datetime(2026, 8, 5, tzinfo=dt.UTC),
            model__name="claude-sonnet-4-20250514",
            raw_identity__fields__project="wrkspc_01PLATFoRm9Qe3VtT5mKcZxw",
            input_uncached_tokens__gt=0,
            batch=False,
        )
        assert (grown.input_uncached_tokens, grown.cost_nanos) == (742_414, 2_227_242_000)  # $3 per MTok


def test_quirks_commitments_credits_units_and_bad_rows(ingest):
    run = ingest("focus", QUIRKS)

    assert (run.rows, run.accepted, run.duplicates, run.rejected) == (22, 12, 1, 9)
    # 0 + 2.5 - 5 - 0.30 + 0.1 + 0.16 + 0.015 + 1500 + 0.002 + 0.005 + 0.02 + 1.23 (the repeated row once)
    assert UsageFact.objects.aggregate(cost=Sum("cost_nanos"))["cost"] == 1_498_732_000_000

    purchase = UsageFact.objects.get(model__name="Provisioned throughput commitment, August")
    assert (purchase.cost_nanos, purchase.ts, purchase.grain) == (
        0,
        dt.datetime(2026, 8, 1, tzinfo=dt.UTC),
        Grain.DAY,
    )
    covered = UsageFact.objects.get(
        model__name="gpt-4.1", cost_nanos=2_500_000_000
    )  # billed $0, effective $2.50
    assert (covered.input_uncached_tokens, covered.raw_identity.fields["resource"]) == (
        1_500_000,  # 1,500 x "1K Tokens"
        "/subscriptions/s1/deployments/gpt41-ptu",
    )
    assert UsageFact.objects.get(model__name="Promotional credit").cost_nanos == -5_000_000_000
    correction = UsageFact.objects.get(model__name="gpt-4.1 output correction")
    assert (correction.cost_nanos, correction.output_tokens) == (-300_000_000, 0)
    thinking = UsageFact.objects.get(model__name="Gemini 2.5 Flash\nthinking tokens")
    assert (thinking.output_tokens, thinking.reasoning_tokens, thinking.provider.slug) == (
        40_000,
        40_000,
        "google",
    )
    gpt = UsageFact.objects.filter(model__name="gpt-4.1").aggregate(
        out=Sum("output_tokens"), read=Sum("cache_read_tokens"), input=Sum("input_uncached_tokens")
    )
    assert gpt == {"out": 20_000, "read": 30_000, "input": 1_510_000}
    big = UsageFact.objects.get(model__name="claude-sonnet-4-20250514")
    assert (big.cache_read_tokens, big.cost_nanos) == (5_000_000_000, 1_500_000_000_000)
    assert (
        UsageFact.objects.get(model__name="acme-large-2").cost_nanos == 2_000_000
    )  # a bill stands, known model or not
    haiku = UsageFact.objects.get(model__name="claude-haiku-4-5-20251001")
    assert haiku.raw_identity.fields == {
        "gateway_team": "données-équipe",
        "tag": "résumé",
        "project": "wrkspc_fr",
    }
    hourly = UsageFact.objects.get(grain=Grain.HOUR)
    assert (hourly.ts, hourly.input_uncached_tokens) == (dt.datetime(2026, 8, 5, 10, tzinfo=dt.UTC), 10_000)
    assert UsageFact.objects.get(model__name="Sales tax").cost_nanos == 1_230_000_000

    rejected = [(r.line, r.field) for r in RejectedRow.objects.order_by("line")]
    # The thinking row's quoted newline makes it two lines (6-7), so the bad rows start at 16.
    assert rejected == [
        (16, "BillingCurrency"),
        (17, "EffectiveCost"),
        (18, "ChargePeriodStart"),
        (19, "ChargePeriodEnd"),
        (20, "Tags"),
        (21, "ConsumedQuantity"),
        (22, "(natural key)"),
        (23, "EffectiveCost"),
        (24, "(line)"),
    ]
    assert RejectedRow.objects.get(line=16).reason == "only USD amounts are supported, got 'EUR'"
    assert RejectedRow.objects.get(line=22).reason.startswith("same charge as line 3 ")
    assert RejectedRow.objects.get(line=21).raw.startswith("acct-1,proj-azure-1,2026-08-05T00:00:00Z,")


def test_a_file_without_the_cost_column_is_refused_whole(ingest):
    run = ingest("focus", MISSING_COLUMNS)

    assert run.status == RunStatus.FAILED
    assert "focus_missing_columns.csv: line 1 (header): missing FOCUS columns EffectiveCost" in run.error
    assert UsageFact.objects.count() == 0
