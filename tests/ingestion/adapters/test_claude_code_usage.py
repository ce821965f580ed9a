"""Claude Code usage report: one row per person, day and model, priced from its tokens to the
nano-dollar; Anthropic's estimate (in cents) is kept beside it as the reported cost, never as the cost."""

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db.models import Count, Sum
from genai_prices import Usage, calc_price

from apps.ingestion.models import RejectedRow
from apps.usage.models import Grain, UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "anthropic_admin_usage"
FILES = [
    DIR / "claude_code_usage_2026-08-03_page1.json",
    DIR / "claude_code_usage_2026-08-03_page2.json",
    DIR / "claude_code_usage_2026-08-04.json",
]
COLUMNS = (
    "input_uncached_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
)


def expected_from_files(paths) -> dict[str, dict]:
    """Per model, from the files with plain json and genai-prices' calc_price."""
    totals: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
    for path in paths:
        for record in json.loads(path.read_text())["data"]:
            for entry in record["model_breakdown"]:
                tokens = entry["tokens"]
                price = calc_price(
                    Usage(
                        input_tokens=tokens["input"] + tokens["cache_read"] + tokens["cache_creation"],
                        cache_read_tokens=tokens["cache_read"],
                        cache_write_tokens=tokens["cache_creation"],
                        output_tokens=tokens["output"],
                    ),
                    entry["model"],
                    provider_id="anthropic",
                    genai_request_timestamp=dt.datetime.fromisoformat(record["date"]),
                ).total_price
                model = totals[entry["model"]]
                model["input_uncached_tokens"] += tokens["input"]
                model["cache_read_tokens"] += tokens["cache_read"]
                model["cache_write_5m_tokens"] += tokens["cache_creation"]
                model["output_tokens"] += tokens["output"]
                model["cost"] += price
                model["reported"] += Decimal(repr(entry["estimated_cost"]["amount"])) / 100
                model["rows"] += 1
    return {name: dict(values) for name, values in totals.items()}


def stored_by_model() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        rows=Count("id"),
        cost=Sum("cost_nanos"),
        reported=Sum("reported_cost_nanos"),
        **{column: Sum(column) for column in COLUMNS},
    )
    return {row.pop("model__name"): row for row in rows}


def totals(**filters) -> dict:
    return UsageFact.objects.filter(**filters).aggregate(
        rows=Count("id"), cost=Sum("cost_nanos"), reported=Sum("reported_cost_nanos")
    )


def test_the_sample_days_match_the_independent_checker(ingest):
    run = ingest("claude_code_usage", *FILES)

    assert run.summary() == {
        "run": run.pk,
        "rows": 7,
        "accepted": 7,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    expected = expected_from_files(FILES)
    stored = stored_by_model()
    assert set(stored) == set(expected)
    for model, want in expected.items():
        assert stored[model]["rows"] == want["rows"], model
        for column in (
            "input_uncached_tokens",
            "cache_read_tokens",
            "cache_write_5m_tokens",
            "output_tokens",
        ):
            assert stored[model][column] == want[column], (model, column)
        assert stored[model]["cache_write_1h_tokens"] == 0
        assert Decimal(stored[model]["cost"]) / 10**9 == want["cost"], model
        assert Decimal(stored[model]["reported"]) / 10**9 == want["reported"], model
    # Anthropic's estimates add up to 1,086.70 cents.
    assert totals()["reported"] == 10_867_000_000
    assert UsageFact.objects.filter(grain=Grain.DAY).count() == 7


def test_a_persons_day_is_priced_from_tokens_and_the_estimate_kept_beside_it(ingest):
    ingest("claude_code_usage", FILES[0])
    fact = UsageFact.objects.get(
        ts=dt.datetime(2026, 8, 3, tzinfo=dt.UTC),
        model__name="claude-sonnet-4-20250514",
        raw_identity__fields__email="alice.nguyen@northwind.example",
    )
    assert (
        fact.input_uncached_tokens,
        fact.cache_read_tokens,
        fact.cache_write_5m_tokens,
        fact.output_tokens,
    ) == (152_340, 1_204_500, 88_200, 48_910)
    # $3 / $0.30 / $3.75 / $15 per MTok; the estimate says 188.28 cents.
    assert (
        fact.cost_nanos
        == 152_340 * 3_000 + 1_204_500 * 300 + 88_200 * 3_750 + 48_910 * 15_000
        == 1_882_770_000
    )
    assert fact.reported_cost_nanos == 1_882_800_000
    assert fact.raw_identity.fields == {"email": "alice.nguyen@northwind.example"}
    assert totals(raw_identity__fields__email="alice.nguyen@northwind.example")["rows"] == 2


def test_re_ingesting_and_a_re_pulled_day_change_no_total(ingest):
    ingest("claude_code_usage", *FILES)
    before = stored_by_model()
    again = ingest("claude_code_usage", *FILES)
    assert (again.rows, again.accepted, again.duplicates, again.replaced) == (7, 0, 7, 0)
    assert stored_by_model() == before

    # 2026-08-04 again: Alice (email cased differently) and Chen's Sonnet unchanged, Chen's Opus
    # grown; and 2026-08-05 new.
    repull = ingest("claude_code_usage", DIR / "claude_code_usage_reexport.json")
    assert (repull.rows, repull.accepted, repull.duplicates, repull.replaced) == (4, 1, 2, 1)
    opus = UsageFact.objects.get(ts__date="2026-08-04", model__name="claude-opus-4-1-20250805")
    assert opus.cost_nanos == 50_000 * 15_000 + 350_000 * 1_500 + 45_000 * 18_750 + 17_000 * 75_000
    assert opus.reported_cost_nanos == 3_422_200_000
    assert totals(ts__date="2026-08-04")["rows"] == 3
    dana = UsageFact.objects.get(ts__date="2026-08-05")
    assert (dana.cost_nanos, dana.reported_cost_nanos) == (9_000 * 3_000 + 1_000 * 15_000, 42_000_000)
    assert totals()["rows"] == 8


def test_an_older_day_arriving_late_does_not_roll_the_grown_one_back(ingest):
    ingest("claude_code_usage", DIR / "claude_code_usage_reexport.json")
    late = ingest("claude_code_usage", FILES[2])
    assert (late.rows, late.accepted, late.duplicates, late.replaced) == (3, 0, 3, 0)
    opus = UsageFact.objects.get(ts__date="2026-08-04", model__name="claude-opus-4-1-20250805")
    assert opus.cost_nanos == 3_393_750_000


def test_quirks_api_actors_date_forms_missing_costs_and_huge_counts(ingest):
    run = ingest("claude_code_usage", DIR / "claude_code_usage_quirks.json")

    assert (run.rows, run.accepted, run.rejected) == (5, 5, 0)
    # "2026-08-07", "...T00:00:00Z" and "...T00:00:00+00:00" are the same day.
    assert set(UsageFact.objects.values_list("ts", flat=True)) == {dt.datetime(2026, 8, 7, tzinfo=dt.UTC)}
    bot = UsageFact.objects.get(
        raw_identity__fields__api_key_alias="ci-bot — ünïcode ✓", model__name__startswith="claude-sonnet"
    )
    assert bot.cache_read_tokens == 5_000_000_000
    assert bot.cost_nanos == 1_000 * 3_000 + 5_000_000_000 * 300 + 200 * 15_000
    assert bot.reported_cost_nanos == 1_505_000_000  # "150.5" cents
    unknown = UsageFact.objects.get(model__name="claude-experimental-2027")
    assert (unknown.cost_nanos, unknown.reported_cost_nanos) == (None, 150_000)  # 1.5e-2 cents
    zoe = {
        f.model.name: f
        for f in UsageFact.objects.filter(raw_identity__fields__email="zoë.müller@acme.example")
    }
    assert (
        zoe["claude-opus-4-1-20250805"].cost_nanos,
        zoe["claude-opus-4-1-20250805"].reported_cost_nanos,
    ) == (0, 0)
    # Missing cache counts are zero; a missing estimate is unknown, not zero.
    haiku = zoe["claude-haiku-4-5-20251001"]
    assert (haiku.cost_nanos, haiku.reported_cost_nanos) == (100 * 1_000 + 50 * 5_000, None)
    alice = UsageFact.objects.get(raw_identity__fields__email="alice@acme.example")
    assert (alice.cost_nanos, alice.reported_cost_nanos) == (28_500_000, 120_000_000)
    assert totals() == {
        "rows": 5,
        "cost": 1_500_006_000_000 + 0 + 350_000 + 28_500_000,
        "reported": 1_505_000_000 + 150_000 + 0 + 120_000_000,
    }


def test_bad_records_are_reported_with_file_line_and_field_and_good_ones_kept(ingest):
    run = ingest("claude_code_usage", DIR / "claude_code_usage_bad_rows.json")

    assert (run.rows, run.accepted, run.rejected) == (13, 3, 10)
    assert totals()["cost"] == 12_675_000 + 1_050_000 + 1_500_000
    # The good model entry of a record with a bad one is kept.
    assert UsageFact.objects.get(raw_identity__fields__email="neg@acme.example").output_tokens == 70
    name = "claude_code_usage_bad_rows.json"
    assert [
        (row.file, row.line, row.field, row.reason)
        for row in RejectedRow.objects.filter(run=run).order_by("line")
    ] == [
        (name, 2, "actor", "has neither email_address nor api_key_name"),
        (name, 3, "date", "not a timestamp: 'someday'"),
        (name, 4, "model_breakdown", "is missing"),
        (name, 5, "model_breakdown[0].tokens.input", "token count is negative (-3)"),
        (name, 7, "model_breakdown[0].model", "is missing"),
        (name, 8, "model_breakdown[0].tokens", "is missing"),
        (name, 9, "model_breakdown[0].estimated_cost.amount", "expected an amount in cents, got 'n/a'"),
        (name, 10, "model_breakdown[0].estimated_cost.currency", "only USD can be stored, got 'EUR'"),
        (name, 11, "(record)", "expected an object, got str"),
        (name, 12, "actor", "has neither email_address nor api_key_name"),
    ]
    raw = json.loads(RejectedRow.objects.get(run=run, line=5).raw)
    assert raw["actor"] == {"email_address": "neg@acme.example", "type": "user_actor"}


@pytest.mark.parametrize("date", ["2026-08-07", "2026-08-07T00:00:00Z", "2026-08-06T17:00:00-07:00"])
def test_every_date_form_is_the_same_day(ingest, tmp_path, date):
    record = {
        "actor": {"type": "user_actor", "email_address": "alice@acme.example"},
        "date": date,
        "model_breakdown": [{"model": "claude-sonnet-4-20250514", "tokens": {"input": 10, "output": 1}}],
    }
    path = tmp_path / "day.json"
    path.write_text(json.dumps({"data": [record], "has_more": False, "next_page": None}))
    ingest("claude_code_usage", path)
    assert UsageFact.objects.get().ts == dt.datetime(2026, 8, 7, tzinfo=dt.UTC)
