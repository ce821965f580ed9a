"""GCP billing export rows for Vertex AI: cost net of credits is the cost, to the nano-dollar; SKUs give
model and token kind; re-queried windows, late rows and grown hours (FORMATS.md §5.1)."""

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

from django.db.models import Count, Sum

from apps.ingestion.models import RejectedRow
from apps.usage.models import Grain, UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "vertex_gemini"
NORMAL = DIR / "billing_export_vertex_normal.jsonl"
LATE = DIR / "billing_export_vertex_late_rows.jsonl"
SUMS = DIR / "billing_export_vertex_hourly_sums.jsonl"
REGROWN = DIR / "billing_export_vertex_hourly_sums_regrown.jsonl"
QUIRKS = DIR / "billing_export_vertex_quirks.jsonl"
BAD_ROWS = DIR / "billing_export_vertex_bad_rows.jsonl"
COLUMNS = ("input_uncached_tokens", "cache_read_tokens", "output_tokens", "reasoning_tokens")
# Written out from the SKU descriptions of the sample: model and the token columns each SKU counts.
SKUS = {
    "Gemini 2.5 Flash GA Text Input - Predictions": ("gemini-2.5-flash", ("input_uncached_tokens",)),
    "Gemini 2.5 Flash GA Text Output - Predictions": ("gemini-2.5-flash", ("output_tokens",)),
    "Gemini 2.5 Flash GA Thinking Text Output - Predictions": (
        "gemini-2.5-flash",
        ("output_tokens", "reasoning_tokens"),
    ),
    "Gemini 2.5 Flash GA Input Text Caching": ("gemini-2.5-flash", ("cache_read_tokens",)),
    "Gemini 2.5 Pro Text Input - Predictions": ("gemini-2.5-pro", ("input_uncached_tokens",)),
    "Gemini 2.5 Pro Text Output - Predictions": ("gemini-2.5-pro", ("output_tokens",)),
    "Gemini 2.5 Pro Thinking Text Output - Predictions": (
        "gemini-2.5-pro",
        ("output_tokens", "reasoning_tokens"),
    ),
    "Gemini 2.5 Pro Input Text Caching": ("gemini-2.5-pro", ("cache_read_tokens",)),
}


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def expected_from_rows(rows: list[dict]) -> dict[str, dict]:
    """Per model with plain json: cost + credits, tokens by SKU; identical rows (a re-query) once."""
    distinct = {json.dumps(row, sort_keys=True): row for row in rows}
    totals: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
    for row in distinct.values():
        model, columns = SKUS[row["sku"]["description"]]
        totals[model]["cost"] += Decimal(repr(row["cost"])) + sum(
            (Decimal(repr(credit["amount"])) for credit in row["credits"]), Decimal(0)
        )
        for column in columns:
            totals[model][column] += int(row["usage"]["amount"])
    return {model: dict(values) for model, values in totals.items()}


def stored_by_model() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        cost=Sum("cost_nanos"), reported=Sum("reported_cost_nanos"), **{c: Sum(c) for c in COLUMNS}
    )
    return {row.pop("model__name"): row for row in rows}


def ledger() -> dict:
    return UsageFact.objects.aggregate(
        rows=Count("id"), cost=Sum("cost_nanos"), **{c: Sum(c) for c in COLUMNS}
    )


def assert_ledger_matches(expected: dict[str, dict]) -> None:
    stored = stored_by_model()
    assert set(stored) == set(expected)
    for model, want in expected.items():
        assert Decimal(stored[model]["cost"]) / 10**9 == want["cost"], model
        assert stored[model]["reported"] == stored[model]["cost"], model
        for column in COLUMNS:
            assert stored[model][column] == want.get(column, 0), (model, column)


def test_the_sample_export_stores_the_bill_to_the_nano(ingest):
    run = ingest("vertex_billing", NORMAL)

    assert run.summary() == {
        "run": run.pk,
        "rows": 32,
        "accepted": 32,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    assert_ledger_matches(expected_from_rows(read_jsonl(NORMAL)))
    # Written out from the file: $29.08827 in four hours over two projects; thinking output is output
    # (and all of it reasoning): Flash thought 388,060 + 602,624 + 1,014,424 + 667,722 tokens.
    assert ledger()["cost"] == 29_088_270_000
    flash = stored_by_model()["gemini-2.5-flash"]
    assert flash["reasoning_tokens"] == 2_672_830
    assert flash["output_tokens"] == 2_672_830 + 242_537 + 334_791 + 405_769 + 667_722
    assert not UsageFact.objects.filter(price_ref_id__isnull=False).exists()
    assert set(UsageFact.objects.values_list("grain", flat=True).distinct()) == {Grain.HOUR}
    # Resource labels, with project labels under them, and the project id.
    support = UsageFact.objects.filter(
        raw_identity__fields__team="support",
        raw_identity__fields__app="helpdesk-bot",
        raw_identity__fields__env="prod",
        raw_identity__fields__project="nw-support-bot-prod",
    )
    assert support.count() == 16


def test_a_re_queried_window_with_late_rows_adds_only_the_late_rows(ingest):
    ingest("vertex_billing", NORMAL)
    late = ingest("vertex_billing", LATE)

    # 08/04 again (16 identical rows), two rows of the 10:00 hour exported later, one new hour.
    assert (late.rows, late.accepted, late.duplicates, late.replaced, late.rejected) == (19, 3, 16, 0, 0)
    assert_ledger_matches(expected_from_rows(read_jsonl(NORMAL) + read_jsonl(LATE)))
    hour = UsageFact.objects.filter(
        ts=dt.datetime(2026, 8, 4, 10, tzinfo=dt.UTC), model__name="gemini-2.5-flash"
    )
    assert hour.aggregate(tokens=Sum("input_uncached_tokens"))["tokens"] == 4_057_698 + 100_000
    after = ledger()
    assert after["cost"] == 29_088_270_000 + 30_000_000 + 25_000_000 + 125_000_000

    again = ingest("vertex_billing", LATE)
    assert (again.accepted, again.duplicates, again.replaced) == (0, 19, 0)
    assert ledger() == after


def test_a_grown_hour_of_an_aggregated_query_replaces_its_earlier_version_in_either_order(ingest):
    ingest("vertex_billing", SUMS)
    grown = ingest("vertex_billing", REGROWN)  # timestamps now as epoch-second strings

    assert (grown.rows, grown.accepted, grown.replaced, grown.duplicates) == (2, 0, 1, 1)
    first_order = ledger()
    assert first_order == {
        "rows": 2,
        "cost": 450_000_000 + 250_000_000,
        "input_uncached_tokens": 1_500_000,
        "cache_read_tokens": 0,
        "output_tokens": 100_000,
        "reasoning_tokens": 0,
    }

    UsageFact.objects.all().delete()
    ingest("vertex_billing", REGROWN)
    stale = ingest("vertex_billing", SUMS)  # the smaller, earlier version never rolls the hour back
    assert (stale.accepted, stale.replaced, stale.duplicates) == (0, 0, 2)
    assert ledger() == first_order


def test_quirks_credits_currency_skipped_rows_and_sku_kinds(ingest):
    run = ingest("vertex_billing", QUIRKS)

    # Twelve rows; tax and Compute Engine are not Vertex AI usage and are skipped.
    assert (run.rows, run.accepted, run.rejected) == (10, 10, 0)
    facts = {fact.record_key: fact for fact in UsageFact.objects.select_related("model", "raw_identity")}
    by_cost = {fact.cost_nanos: fact for fact in facts.values()}
    # $1.20 - $0.20 - $0.15 of credits.
    assert by_cost[850_000_000].input_uncached_tokens == 4_000_000
    # EUR 9.20 at 0.92 per dollar.
    assert by_cost[10_000_000_000].output_tokens == 1_000_000
    # An adjustment and cache storage move money, not tokens.
    for cost in (-50_000_000, 450_000_000):
        fact = by_cost[cost]
        assert fact.input_uncached_tokens + fact.cache_read_tokens + fact.output_tokens == 0
    assert by_cost[300_000_000].batch is True
    assert UsageFact.objects.get(model__name="gemini-3.5-ultra").output_tokens == 1_000  # unknown, kept
    # Amount and usage as strings, an exponent, and a count past 2**32.
    lite = UsageFact.objects.get(model__name="gemini-2.5-flash-lite")
    assert (lite.input_uncached_tokens, lite.cost_nanos) == (6_000_000_000, 600_000_000_000)
    # Epoch-second strings and an ISO end; labels in other scripts; `task` is our tag.
    labelled = UsageFact.objects.get(raw_identity__fields__team="données")
    assert labelled.ts == dt.datetime(2026, 8, 5, 11, tzinfo=dt.UTC)
    assert labelled.grain == Grain.HOUR
    assert labelled.raw_identity.fields["tag"] == "résumé-batch"
    # No labels, no project: kept, unattributed.
    bare = by_cost[2_500_000]
    assert (bare.output_tokens, bare.reasoning_tokens, bare.raw_identity_id) == (1_000, 1_000, None)
    assert (
        ledger()["cost"]
        == (
            850_000_000
            + 10_000_000_000
            - 50_000_000
            + 450_000_000
            + 300_000_000
            + 50_000_000
            + 600_000_000_000
        )
        + 250_000_000
        + 0
        + 2_500_000
    )
    assert len(facts) == 10


def test_bad_rows_are_reported_by_line_and_field_and_good_rows_kept(ingest):
    run = ingest("vertex_billing", BAD_ROWS)

    assert (run.rows, run.accepted, run.rejected) == (12, 2, 10)
    rejected = [(row.line, row.field) for row in RejectedRow.objects.order_by("line")]
    assert rejected == [
        (2, "cost"),
        (3, "usage_start_time"),
        (4, "usage.amount"),
        (5, "credits"),
        (6, "credits[0].amount"),
        (7, "currency_conversion_rate"),
        (8, "cost"),
        (9, "labels"),
        (10, "(line)"),
        (11, "usage_end_time"),
    ]
    assert RejectedRow.objects.get(line=8).reason == "is missing"
    assert json.loads(RejectedRow.objects.get(line=2).raw)["cost"] == "ten"
    assert ledger()["cost"] == 2 * 30_000_000
