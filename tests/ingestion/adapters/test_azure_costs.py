"""Azure cost-details exports: the billed amount is the cost, to the nano-dollar; meters give model and
token kind; a month-to-date re-export restates days instead of adding to them (FORMATS.md §4.1)."""

import csv
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.db.models import Count, Sum

from apps.ingestion.models import RejectedRow
from apps.usage.models import UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "azure_openai"
NORMAL = DIR / "cost_details_ea_normal.csv"
RESTATED = DIR / "cost_details_ea_mtd_restated.csv"
MCA = DIR / "cost_details_mca_quirks.csv"
BAD_ROWS = DIR / "cost_details_ea_bad_rows.csv"
COLUMNS = ("input_uncached_tokens", "cache_read_tokens", "output_tokens")
# Written out from the meter names: model and the token column each meter counts (quantities in 1K).
METERS = {
    "gpt-4o-0806-Inp-glbl Tokens": ("gpt-4o-0806", "input_uncached_tokens"),
    "gpt-4o-0806-Outp-glbl Tokens": ("gpt-4o-0806", "output_tokens"),
    "gpt-4o-mini-0718-Inp-regnl Tokens": ("gpt-4o-mini-0718", "input_uncached_tokens"),
    "gpt-4o-mini-0718-Outp-regnl Tokens": ("gpt-4o-mini-0718", "output_tokens"),
    "gpt-4o-mini-0718-Batch-Inp-glbl Tokens": ("gpt-4o-mini-0718", "input_uncached_tokens"),
    "gpt-4o-mini-0718-Batch-Outp-glbl Tokens": ("gpt-4o-mini-0718", "output_tokens"),
    "text-embedding-3-large-glbl Tokens": ("text-embedding-3-large", "input_uncached_tokens"),
}


def iso_date(text: str) -> str:
    if "/" in text:
        month, day, year = text.split("/")
        return f"{year}-{month}-{day}"
    return text


def expected_from_csv(*paths) -> dict[str, dict]:
    """Per model with the csv module: billed dollars and tokens; a later file's (date, meter, resource) wins."""
    lines: dict[tuple, dict] = {}
    for path in paths:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                lines[(iso_date(row["Date"]), row["MeterId"], row["ResourceId"].lower())] = row
    totals: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
    for row in lines.values():
        model, column = METERS[row["MeterName"]]
        totals[model]["cost"] += Decimal(row["CostInBillingCurrency"])
        totals[model][column] += Decimal(row["Quantity"]) * 1000
    return {model: dict(values) for model, values in totals.items()}


def stored_by_model() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        rows=Count("id"),
        cost=Sum("cost_nanos"),
        reported=Sum("reported_cost_nanos"),
        **{column: Sum(column) for column in COLUMNS},
    )
    return {row.pop("model__name"): row for row in rows}


def ledger() -> dict:
    return UsageFact.objects.aggregate(
        rows=Count("id"), cost=Sum("cost_nanos"), **{column: Sum(column) for column in COLUMNS}
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
    run = ingest("azure_costs", NORMAL)

    assert run.summary() == {
        "run": run.pk,
        "rows": 21,
        "accepted": 21,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    assert_ledger_matches(expected_from_csv(NORMAL))
    # Written out from the file: $216.37685531 over three days; gpt-4o input 6,329,874 + 4,779,248 +
    # 3,005,344 tokens (Quantity is in thousands).
    assert ledger()["cost"] == 216_376_855_310
    assert stored_by_model()["gpt-4o-0806"]["input_uncached_tokens"] == 14_114_466
    # An invoice line is never priced again, and requests are unknown, not zero.
    assert not UsageFact.objects.filter(price_ref_id__isnull=False).exists()
    assert not UsageFact.objects.filter(requests__isnull=False).exists()
    assert UsageFact.objects.filter(batch=True).count() == 6
    assert set(UsageFact.objects.values_list("grain", "ts__hour").distinct()) == {(3, 0)}


def test_resource_tags_and_scope_become_the_identity(ingest):
    ingest("azure_costs", NORMAL)

    support = UsageFact.objects.filter(raw_identity__fields__team="support")
    assert support.count() == 6
    assert (
        support.filter(
            raw_identity__fields__resource="nw-aoai-swedencentral",
            raw_identity__fields__resource_group="rg-ai-support",
            raw_identity__fields__subscription="6f1c2b7e-3d4a-4c8b-9e0f-1a2b3c4d5e6f",
            raw_identity__fields__app="helpdesk-bot",
        ).count()
        == 6
    )


def test_a_month_to_date_re_export_restates_days_in_either_order(ingest):
    ingest("azure_costs", NORMAL)
    restated = ingest("azure_costs", RESTATED)

    # 08/04 again (7, one with its resource id in other case, one with "On Demand"), 08/05 with the
    # gpt-4o lines revised upwards (2 replaced, 5 unchanged), 08/06 new (2).
    assert (restated.rows, restated.accepted, restated.duplicates, restated.replaced) == (16, 2, 12, 2)
    expected = expected_from_csv(NORMAL, RESTATED)
    assert_ledger_matches(expected)
    day5 = UsageFact.objects.filter(ts__date=dt.date(2026, 8, 5), model__name="gpt-4o-0806")
    assert day5.aggregate(cost=Sum("cost_nanos"))["cost"] == 6_987_024_000 + 59_405_598_000
    after = ledger()
    assert after["rows"] == 23
    assert (
        after["cost"]
        == 216_376_855_310
        + (6_987_024_000 - 6_762_024_000)
        + (59_405_598_000 - 58_505_598_000)
        + 9_000_000_000
    )

    again = ingest("azure_costs", RESTATED)
    assert (again.accepted, again.duplicates, again.replaced) == (0, 16, 0)
    assert ledger() == after

    UsageFact.objects.all().delete()
    ingest("azure_costs", RESTATED)
    older = ingest("azure_costs", NORMAL)  # the earlier, smaller version arrives late: it never rolls back
    assert (older.accepted, older.duplicates, older.replaced) == (7, 14, 0)
    assert ledger() == after


def test_mca_columns_costs_in_usd_and_newer_meter_names(ingest):
    run = ingest("azure_costs", MCA)

    # Eight rows; the virtual machine is not AI spend and is skipped.
    assert (run.rows, run.accepted, run.rejected) == (7, 7, 0)
    # costInUsd, not the EUR costInBillingCurrency (999.99 on every line); "1.25E+3" is $1,250.
    assert ledger() == {
        "rows": 7,
        "cost": 312_500_000 + 1_250_000_000_000 + 0 + 244_624_200 - 225_000_000 + 24_000_000_000 + 10_000_000,
        "input_uncached_tokens": 5_000_000_000 + 1_000,
        "cache_read_tokens": 12_500_000,
        "output_tokens": 815_414,
    }
    stored = stored_by_model()
    # `5.4 mini cd Inp Gl 1M Tokens`: cached input of GPT-5.4 mini, quantity in millions.
    assert stored["gpt-5.4-mini"]["cache_read_tokens"] == 12_500_000
    assert stored["gpt-5.4-mini"]["input_uncached_tokens"] == 5_000_000_000
    assert stored["gpt-5.4-mini"]["cost"] == 1_250_312_500_000
    assert UsageFact.objects.get(model__name="gpt-4o-mini-0718").batch is True
    # A refund returns money, not usage.
    refund = UsageFact.objects.get(model__name="gpt-4o-0806")
    assert (refund.cost_nanos, refund.input_uncached_tokens) == (-225_000_000, 0)
    # A meter that does not count tokens keeps its cost under its own name.
    ptu = UsageFact.objects.get(model__name="Provisioned Managed Global Unit")
    assert (ptu.cost_nanos, ptu.input_uncached_tokens + ptu.output_tokens) == (24_000_000_000, 0)
    assert stored["gpt-9-turbo-0101"]["input_uncached_tokens"] == 1_000  # unknown model, kept
    # Tags without their outer braces, and in other scripts.
    assert UsageFact.objects.filter(raw_identity__fields__team="platform").count() == 5
    other_scripts = UsageFact.objects.filter(
        raw_identity__fields__team="données", raw_identity__fields__owner="zoë"
    )
    assert other_scripts.count() == 1


def test_bad_rows_are_reported_by_line_and_column_and_good_rows_kept(ingest):
    run = ingest("azure_costs", BAD_ROWS)

    assert (run.rows, run.accepted, run.rejected) == (12, 3, 9)
    rejected = [(row.line, row.field) for row in RejectedRow.objects.order_by("line")]
    # The good row starting on line 7 has a quoted two-line cell: the next row starts on line 9.
    assert rejected == [
        (3, "Quantity"),
        (4, "CostInBillingCurrency"),
        (5, "Date"),
        (6, "MeterName"),
        (9, "Quantity"),
        (10, "Tags"),
        (11, "BillingCurrencyCode"),
        (12, "UnitOfMeasure"),
        (13, "CostInBillingCurrency"),
    ]
    assert "not USD" in RejectedRow.objects.get(line=11).reason
    assert "out of range" in RejectedRow.objects.get(line=13).reason
    raw = RejectedRow.objects.get(line=3).raw
    assert next(csv.reader([raw]))[15] == "lots"  # the row as a CSV line, to fix and re-submit
    assert ledger() == {
        "rows": 3,
        "cost": 165_000_000 * 2 + 330_000_000,
        "input_uncached_tokens": 4_000_000,
        "cache_read_tokens": 0,
        "output_tokens": 0,
    }


def test_a_file_that_is_not_comma_separated_is_refused_as_a_whole(ingest):
    run = ingest("azure_costs", DIR / "cost_details_semicolon.csv")
    assert run.status == "failed"
    assert "has no Date, MeterName, Quantity, UnitOfMeasure" in run.error
    assert "';'-separated" in run.error
    assert UsageFact.objects.count() == 0
