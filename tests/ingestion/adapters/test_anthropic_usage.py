"""Anthropic messages usage report: token kinds kept apart (uncached input excludes the cache), priced
to the nano-dollar, and the priced usage agrees with Anthropic's own cost report line by line."""

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
PAGES = [DIR / "usage_report_messages_normal_page1.json", DIR / "usage_report_messages_normal_page2.json"]
GROUPS = (
    "workspace_id",
    "api_key_id",
    "account_id",
    "service_account_id",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "speed",
)
COLUMNS = (
    "input_uncached_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
)


def expected_from_pages(paths) -> dict[str, dict]:
    """Per model, from the files with plain json and genai-prices' own calc_price: tokens and cost."""
    buckets: dict[tuple, dict] = {}
    for path in paths:
        for bucket in json.loads(path.read_text())["data"]:
            for result in bucket["results"]:
                key = (bucket["starting_at"], *(result.get(name) for name in GROUPS))
                buckets[key] = {"starting_at": bucket["starting_at"], **result}
    totals: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
    for result in buckets.values():
        writes = result["cache_creation"]
        kinds = {
            "input_uncached_tokens": result["uncached_input_tokens"],
            "cache_read_tokens": result["cache_read_input_tokens"],
            "cache_write_5m_tokens": writes["ephemeral_5m_input_tokens"],
            "cache_write_1h_tokens": writes["ephemeral_1h_input_tokens"],
            "output_tokens": result["output_tokens"],
        }
        price = calc_price(
            Usage(
                input_tokens=sum(kinds.values()) - kinds["output_tokens"],
                cache_read_tokens=kinds["cache_read_tokens"],
                cache_write_tokens=kinds["cache_write_5m_tokens"] + kinds["cache_write_1h_tokens"],
                cache_write_1h_tokens=kinds["cache_write_1h_tokens"],
                output_tokens=kinds["output_tokens"],
            ),
            result["model"],
            provider_id="anthropic",
            genai_request_timestamp=dt.datetime.fromisoformat(result["starting_at"]),
            price_context={"processing": "batch"} if result["service_tier"] == "batch" else None,
        ).total_price
        model = totals[result["model"]]
        for column, count in kinds.items():
            model[column] += count
        model["cost"] += price
        model["rows"] += 1
    return {name: dict(values) for name, values in totals.items()}


def stored_by_model() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        rows=Count("id"),
        cost=Sum("cost_nanos"),
        requests=Sum("requests"),
        **{column: Sum(column) for column in COLUMNS},
    )
    return {row.pop("model__name"): row for row in rows}


def cost_of(**filters) -> int | None:
    return UsageFact.objects.filter(**filters).aggregate(cost=Sum("cost_nanos"))["cost"]


def test_the_sample_pages_match_the_independent_checker(ingest):
    run = ingest("anthropic_usage", *PAGES)

    assert run.summary() == {
        "run": run.pk,
        "rows": 18,
        "accepted": 18,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    expected = expected_from_pages(PAGES)
    stored = stored_by_model()
    assert set(stored) == set(expected)
    for model, want in expected.items():
        assert stored[model]["rows"] == want["rows"], model
        assert {column: stored[model][column] for column in COLUMNS} == {
            column: want[column] for column in COLUMNS
        }, model
        assert Decimal(stored[model]["cost"]) / 10**9 == want["cost"], model
        # The report has no request count: unknown, not zero.
        assert stored[model]["requests"] is None
    assert sum(row["cost"] for row in stored.values()) == 226_325_716_690


def test_uncached_input_is_taken_as_it_is_and_each_kind_priced_once(ingest):
    ingest("anthropic_usage", PAGES[0])
    fact = UsageFact.objects.get(
        ts__date="2026-08-03",
        model__name="claude-sonnet-4-20250514",
        raw_identity__fields__workspace="wrkspc_01PLATFoRm9Qe3VtT5mKcZxw",
    )
    assert (
        fact.input_uncached_tokens,
        fact.cache_read_tokens,
        fact.cache_write_5m_tokens,
        fact.output_tokens,
        fact.grain,
    ) == (883_882, 603_998, 85_365, 142_556, Grain.DAY)
    # $3 / $0.30 / $3.75 / $15 per MTok; Anthropic's cost report bills the same day 529.130415 cents.
    assert (
        fact.cost_nanos
        == 883_882 * 3_000 + 603_998 * 300 + 85_365 * 3_750 + 142_556 * 15_000
        == 5_291_304_150
    )
    assert fact.raw_identity.fields == {
        "workspace": "wrkspc_01PLATFoRm9Qe3VtT5mKcZxw",
        "api_key": "apikey_01PlatCop1lot4Gh7JkLmN",
    }
    one_hour = UsageFact.objects.get(ts__date="2026-08-03", model__name="claude-haiku-4-5-20251001")
    assert (one_hour.cache_write_5m_tokens, one_hour.cache_write_1h_tokens) == (0, 24_661)
    # 1-hour writes at $2 per MTok for Haiku 4.5, not the 5-minute $1.25.
    assert one_hour.cost_nanos == 223_520 * 1_000 + 36_817 * 100 + 24_661 * 2_000 + 41_040 * 5_000


def test_priced_usage_agrees_with_the_cost_report_for_every_standard_tier_line(ingest):
    """Two Anthropic exports of the same days: usage x list price == the billed token lines, to the nano."""
    ingest("anthropic_usage", *PAGES)
    report = json.loads((DIR / "cost_report_normal.json").read_text())
    billed: dict[tuple, Decimal] = defaultdict(Decimal)
    for bucket in report["data"]:
        for line in bucket["results"]:
            if line["cost_type"] == "tokens" and line["service_tier"] == "standard":
                billed[(bucket["starting_at"][:10], line["model"])] += Decimal(line["amount"])
    assert len(billed) == 15
    for (day, model), cents in billed.items():
        assert cost_of(ts__date=day, model__name=model, batch=False) == int(cents * 10**7), (day, model)


@pytest.mark.xfail(
    strict=True,
    reason="genai-prices has no batch price for Anthropic models, so batch usage is priced at the "
    "standard rate while the cost report bills half",
)
def test_batch_usage_is_priced_at_the_batch_discount(ingest):
    ingest("anthropic_usage", PAGES[0])
    # The cost report bills 330.2016 + 169.59525 cents for the day's batch usage of Sonnet 4.
    assert cost_of(ts__date="2026-08-03", batch=True) == 4_997_968_500


@pytest.mark.xfail(
    strict=True,
    reason="the pricer applies long-context tiers to a bucket's summed input, so a day of short "
    "(0-200k) requests adding up past 200k tokens is priced at the long-context rate",
)
def test_a_short_context_bucket_is_priced_at_the_base_rate_however_large(ingest, tmp_path):
    path = tmp_path / "usage.json"
    result = {
        "model": "claude-sonnet-4-5-20250929",
        "context_window": "0-200k",
        "uncached_input_tokens": 300_000,
        "output_tokens": 10_000,
    }
    bucket = {"starting_at": "2026-08-07T00:00:00Z", "ending_at": "2026-08-08T00:00:00Z", "results": [result]}
    path.write_text(json.dumps({"data": [bucket], "has_more": False, "next_page": None}))
    ingest("anthropic_usage", path)
    assert cost_of() == 300_000 * 3_000 + 10_000 * 15_000


def test_re_ingesting_and_an_overlapping_export_change_no_total(ingest):
    ingest("anthropic_usage", *PAGES)
    before = stored_by_model()
    again = ingest("anthropic_usage", *PAGES)
    assert (again.rows, again.accepted, again.duplicates, again.replaced) == (18, 0, 18, 0)
    assert stored_by_model() == before

    overlap = ingest("anthropic_usage", DIR / "usage_report_messages_reexport_overlap.json")
    # 2026-08-05 again (6 identical rows) and a first version of 2026-08-06 (2 rows).
    assert (overlap.rows, overlap.accepted, overlap.duplicates, overlap.replaced) == (8, 2, 6, 0)
    day_6 = 100_000 * 3_000 + 200_000 * 300 + 5_000 * 3_750 + 10_000 * 15_000
    day_6 += 50_000 * 1_000 + 10_000 * 100 + 2_000 * 2_000 + 5_000 * 5_000
    assert cost_of(ts__date="2026-08-06") == day_6 == 608_750_000
    assert cost_of() == 226_325_716_690 + day_6


@pytest.mark.parametrize("grown_last", [True, False])
def test_a_grown_bucket_stands_in_either_order(ingest, grown_last):
    files = [
        DIR / "usage_report_messages_reexport_overlap.json",
        DIR / "usage_report_messages_reexport_grown.json",
    ]
    runs = [ingest("anthropic_usage", path) for path in (files if grown_last else files[::-1])]

    sonnet = 300_000 * 3_000 + 500_000 * 300 + 9_000 * 3_750 + 30_000 * 15_000
    haiku = 80_000 * 1_000 + 30_000 * 100 + 2_000 * 2_000 + 9_000 * 5_000
    opus = 10_000 * 15_000 + 1_000 * 75_000
    assert cost_of(ts__date="2026-08-06") == sonnet + haiku + opus == 1_890_750_000
    assert (
        UsageFact.objects.filter(ts__date="2026-08-06").aggregate(t=Sum("input_uncached_tokens"))["t"]
        == 390_000
    )
    assert UsageFact.objects.count() == 9
    if grown_last:
        assert (runs[1].accepted, runs[1].replaced, runs[1].duplicates) == (1, 2, 0)
    else:
        # The older, smaller version arriving late does not roll the buckets back.
        assert (runs[1].accepted, runs[1].replaced, runs[1].duplicates) == (6, 0, 2)


def test_quirks_nulls_missing_fields_unknown_models_huge_counts_and_hourly_buckets(ingest):
    run = ingest("anthropic_usage", DIR / "usage_report_messages_quirks.json")

    assert (run.rows, run.accepted, run.rejected) == (8, 8, 0)
    # Null workspace (the default one) and null key (Console usage): kept, no identity to attribute by.
    console = UsageFact.objects.get(model__name="claude-sonnet-4-20250514", cache_write_1h_tokens=2_000)
    assert console.raw_identity_id is None
    assert console.cost_nanos == 1_000 * 3_000 + 2_000 * 6_000 + 500 * 15_000
    # Only the required fields present: the rest count as zero.
    sparse = UsageFact.objects.get(model__name="claude-haiku-4-5-20251001", grain=Grain.DAY)
    assert (sparse.input_uncached_tokens, sparse.cache_read_tokens, sparse.output_tokens) == (2_000, 0, 400)
    assert sparse.cost_nanos == 4_000_000
    # A model no price list knows is kept, unpriced (NULL), never free.
    unknown = UsageFact.objects.get(model__name="claude-experimental-2027")
    assert (unknown.input_uncached_tokens, unknown.cost_nanos, unknown.price_ref_id) == (3_000, None, None)
    assert UsageFact.objects.get(model__name="claude-opus-4-1-20250805").cost_nanos == 0
    # Counts above 2^32, stored and priced exactly.
    big = UsageFact.objects.get(model__name="claude-3-5-haiku-20241022")
    assert (big.input_uncached_tokens, big.cache_read_tokens) == (2**32 + 1, 5_000_000_000)
    assert big.cost_nanos == (2**32 + 1) * 800 + 5_000_000_000 * 80 + 1_000 * 4_000
    unicode_key = UsageFact.objects.get(raw_identity__fields__api_key="apikey_Ünïcode—测试")
    assert unicode_key.cost_nanos == 100 * 3_000 + 10 * 15_000
    # Hourly buckets, written with "+00:00", ".000Z" and "Z": one grain, one clock.
    hourly = list(UsageFact.objects.filter(grain=Grain.HOUR).order_by("ts"))
    assert [fact.ts.isoformat() for fact in hourly] == [
        "2026-08-08T10:00:00+00:00",
        "2026-08-08T11:00:00+00:00",
    ]
    assert [fact.cost_nanos for fact in hourly] == [17_000_000, 12_500_000]
    assert [fact.raw_identity.fields for fact in hourly] == [
        {"workspace": "wrkspc_01Qu1rk", "user": "user_01Acct"},
        {"workspace": "wrkspc_01Qu1rk", "service_account": "svcacct_01Etl"},
    ]
    assert cost_of() == 22_500_000 + 4_000_000 + 0 + 3_835_977_837_600 + 450_000 + 17_000_000 + 12_500_000


def test_bad_rows_are_reported_with_file_line_and_field_and_good_rows_kept(ingest):
    run = ingest("anthropic_usage", DIR / "usage_report_messages_bad_rows.json")

    assert (run.rows, run.accepted, run.rejected) == (13, 2, 11)
    assert cost_of() == 1_000 * 1_000 + 100 * 5_000 + 2_000 * 3_000 + 200 * 15_000
    name = "usage_report_messages_bad_rows.json"
    assert [
        (row.file, row.line, row.field, row.reason)
        for row in RejectedRow.objects.filter(run=run).order_by("line")
    ] == [
        (name, 2, "uncached_input_tokens", "token count is negative (-5)"),
        (name, 3, "output_tokens", "expected a token count, got 'many'"),
        (name, 4, "uncached_input_tokens", "is missing"),
        (name, 5, "cache_creation", "expected an object, got str"),
        (name, 6, "cache_creation.ephemeral_1h_input_tokens", "expected a token count, got 1.5"),
        (name, 7, "(result)", "expected an object, got int"),
        (name, 8, "output_tokens", "token count 9223372036854775808 does not fit in 64 bits"),
        (name, 10, "starting_at", "not a timestamp: 'yesterday'"),
        (name, 11, "ending_at", "'2026-08-08T00:00:00Z' is not after starting_at"),
        (name, 12, "results", "expected a bucket with a results list"),
        (name, 13, "data", "expected a report page with a data list"),
    ]
    raw = json.loads(RejectedRow.objects.get(run=run, line=2).raw)
    assert raw["bucket"] == {"starting_at": "2026-08-09T00:00:00Z", "ending_at": "2026-08-10T00:00:00Z"}
    assert raw["result"]["uncached_input_tokens"] == -5
