"""Anthropic cost report: amounts in cents become the cost to the nano-dollar, exactly, and are never
priced again; re-exports never count a line twice."""

import json
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db.models import Count, Sum

from apps.ingestion.models import RejectedRow
from apps.usage.models import UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "anthropic_admin_usage"
REPORT = DIR / "cost_report_normal.json"
TOKENS = (
    "input_uncached_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
)


def billed_by_model(path) -> dict[str, Decimal]:
    """Dollars per model (web search under its own name), from the file with plain json."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for bucket in json.loads(path.read_text())["data"]:
        for line in bucket["results"]:
            totals[line["model"] or "(web search)"] += Decimal(line["amount"]) / 100
    return dict(totals)


def stored_by_model() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        rows=Count("id"), cost=Sum("cost_nanos"), reported=Sum("reported_cost_nanos")
    )
    return {row.pop("model__name"): row for row in rows}


def cost_of(**filters) -> int | None:
    return UsageFact.objects.filter(**filters).aggregate(cost=Sum("cost_nanos"))["cost"]


def test_the_sample_report_stores_the_bill_to_the_nano(ingest):
    run = ingest("anthropic_costs", REPORT)

    assert run.summary() == {
        "run": run.pk,
        "rows": 69,
        "accepted": 69,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    expected = billed_by_model(REPORT)
    stored = stored_by_model()
    assert set(stored) == set(expected)
    for model, dollars in expected.items():
        assert Decimal(stored[model]["cost"]) / 10**9 == dollars, model
        assert stored[model]["reported"] == stored[model]["cost"], model
    # Written out from the file: 21,548.170619 cents over three days.
    assert cost_of() == 215_481_706_190
    assert stored["(web search)"] == {"rows": 3, "cost": 1_420_000_000, "reported": 1_420_000_000}
    # A cost line carries money, not tokens, and is never priced again.
    assert UsageFact.objects.aggregate(**{column: Sum(column) for column in TOKENS}) == dict.fromkeys(
        TOKENS, 0
    )
    assert not UsageFact.objects.filter(price_ref_id__isnull=False).exists()
    # "1943.1798" cents: Sonnet 4.5's long-context input on 2026-08-03, $19.431798.
    assert cost_of(ts__date="2026-08-03", model__name="claude-sonnet-4-5-20250929") == 19_431_798_000 + (
        12_951_157_500 + 1_022_832_600 + 175_185_000
    )
    assert UsageFact.objects.filter(batch=True).count() == 6
    assert (
        UsageFact.objects.filter(raw_identity__fields__workspace="wrkspc_01SUPPoRt7Hn2QpL4sDfGhj").count()
        == 27
    )


def test_re_ingesting_and_an_overlapping_export_change_no_total(ingest):
    ingest("anthropic_costs", REPORT)
    again = ingest("anthropic_costs", REPORT)
    assert (again.rows, again.accepted, again.duplicates, again.replaced) == (69, 0, 69, 0)

    overlap = ingest("anthropic_costs", DIR / "cost_report_reexport_overlap.json")
    # 2026-08-05 again (23 identical lines) and a first version of 2026-08-06 (2 lines).
    assert (overlap.rows, overlap.accepted, overlap.duplicates, overlap.replaced) == (25, 2, 23, 0)
    assert cost_of() == 215_481_706_190 + 300_000_000 + 150_000_000
    repeat = ingest("anthropic_costs", DIR / "cost_report_reexport_overlap.json")
    assert (repeat.accepted, repeat.duplicates, repeat.replaced) == (0, 25, 0)
    assert cost_of() == 215_481_706_190 + 450_000_000


def test_a_grown_day_replaces_its_earlier_version(ingest):
    ingest("anthropic_costs", DIR / "cost_report_reexport_overlap.json")
    grown = ingest("anthropic_costs", DIR / "cost_report_reexport_grown.json")

    assert (grown.rows, grown.accepted, grown.replaced, grown.duplicates) == (3, 1, 2, 0)
    # 90 + 45 + 32 cents: the re-export's lines, not the sum of both versions.
    assert cost_of(ts__date="2026-08-06") == 1_670_000_000
    assert UsageFact.objects.filter(ts__date="2026-08-06").count() == 3


@pytest.mark.xfail(
    strict=True,
    reason="the store decides 'not smaller' by tokens and requests only; cost lines have neither, so "
    "a late, older export of a day rolls its billed amounts back",
)
def test_a_late_older_export_does_not_roll_a_day_back(ingest):
    ingest("anthropic_costs", DIR / "cost_report_reexport_grown.json")
    ingest("anthropic_costs", DIR / "cost_report_reexport_overlap.json")
    assert cost_of(ts__date="2026-08-06") == 1_670_000_000


def test_quirks_amount_forms_lines_without_a_model_and_unknown_models(ingest):
    run = ingest("anthropic_costs", DIR / "cost_report_quirks.json")

    assert (run.rows, run.accepted, run.rejected) == (10, 10, 0)
    stored = stored_by_model()
    # "1.5E+2", "0E-6176", 41 significant digits (rounded half-even to the nano), a 250.5 JSON number,
    # a batch line of "50", and "1" on a line without a currency field.
    assert stored["claude-sonnet-4-20250514"] == {
        "rows": 6,
        "cost": 1_500_000_000 + 0 + 123_456_789 + 2_505_000_000 + 500_000_000 + 10_000_000,
        "reported": 4_638_456_789,
    }
    assert stored["(code execution)"]["cost"] == 300_000_000
    assert stored["(not grouped by description)"]["cost"] == 10_000_000_000
    # An unknown model on an invoice line costs what was billed: the bill is the truth.
    assert stored["claude-experimental-2027"]["cost"] == 72_500_000
    assert stored["claude-haiku-4-5-20251001"]["cost"] == 49_322_000
    assert cost_of() == 15_060_278_789
    assert cost_of(batch=True) == 500_000_000
    # The default workspace (null) has no identity; the others keep theirs.
    assert UsageFact.objects.get(model__name="(code execution)").raw_identity_id is None
    assert UsageFact.objects.filter(raw_identity__fields__workspace="wrkspc_01Qu1rk").count() == 9
    assert cost_of(ts__date="2026-08-08") == 10_000_000


def test_bad_lines_are_reported_with_file_line_and_field_and_good_lines_kept(ingest):
    run = ingest("anthropic_costs", DIR / "cost_report_bad_rows.json")

    assert (run.rows, run.accepted, run.rejected) == (11, 2, 9)
    assert cost_of() == 1_000_000_000 + 2_500_000_000
    name = "cost_report_bad_rows.json"
    assert [
        (row.file, row.line, row.field, row.reason)
        for row in RejectedRow.objects.filter(run=run).order_by("line")
    ] == [
        (name, 2, "amount", "expected an amount in cents, got 'abc'"),
        (name, 3, "amount", "is missing"),
        (name, 4, "amount", "expected an amount in cents, got True"),
        (name, 5, "currency", "only USD amounts can be stored, got 'EUR'"),
        (name, 6, "amount", "expected a finite amount, got 'NaN'"),
        (name, 7, "amount", "'1E+999999' cents does not fit in 64 bits of nano-dollars"),
        (name, 8, "(result)", "expected an object, got str"),
        (name, 10, "ending_at", "not a timestamp: 'not a time'"),
        (name, 11, "results", "expected a bucket with a results list"),
    ]
    raw = json.loads(RejectedRow.objects.get(run=run, line=2).raw)
    assert raw["result"]["amount"] == "abc"
    assert raw["result"]["description"] == "Claude Sonnet 4 Usage - Output Tokens"
