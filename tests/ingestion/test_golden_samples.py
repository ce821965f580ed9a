"""The two shared samples give exact totals: tokens by kind per model, requests and cost to the cent,
computed independently (tests/reference.py) and, for the headline figures, written out by hand."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from apps.usage.models import UsageFact
from tests.conftest import FIXTURES
from tests.reference import cents, litellm_expected, openai_usage_expected

LITELLM = FIXTURES / "litellm_spend_logs" / "spend_logs_normal.json"
OPENAI_PAGES = sorted((FIXTURES / "openai_admin_usage").glob("completions_usage_normal_page*.json"))


def stored_by_model() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        input_uncached_tokens=Sum("input_uncached_tokens"),
        cache_read_tokens=Sum("cache_read_tokens"),
        cache_write_tokens=Sum("cache_write_5m_tokens") + Sum("cache_write_1h_tokens"),
        output_tokens=Sum("output_tokens"),
        requests=Sum("requests"),
        cost=Sum("cost_nanos"),
        reported=Sum("reported_cost_nanos"),
    )
    return {row.pop("model__name"): row for row in rows}


KINDS = ("input_uncached_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "requests")


def assert_matches_checker(expected: dict[str, dict]) -> dict[str, dict]:
    """Stored totals per model equal the checker's: every token kind, requests, and cost to the nano."""
    stored = stored_by_model()
    assert set(stored) == set(expected)
    for model, want in expected.items():
        assert {kind: stored[model][kind] for kind in KINDS} == {kind: want[kind] for kind in KINDS}, model
        assert Decimal(stored[model]["cost"]) / 10**9 == want["cost"], model
    return stored


def test_litellm_sample_totals_match_the_independent_checker(ingest):
    run = ingest("litellm_spend_logs", LITELLM)

    assert run.summary() == {
        "run": run.pk,
        "rows": 16,
        "accepted": 16,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    expected = litellm_expected(LITELLM)
    stored = assert_matches_checker(expected)
    for model, want in expected.items():
        assert Decimal(stored[model]["reported"]) / 10**9 == want["reported"], model


def test_litellm_sample_headline_figures():
    """Written out by hand from the file: 16 requests, $0.198305 at list price (LiteLLM reports the same)."""
    expected = litellm_expected(LITELLM)
    assert sum(m["requests"] for m in expected.values()) == 16
    assert sum(m["cost"] for m in expected.values()) == Decimal("0.19830538")
    assert expected["claude-sonnet-4-20250514"]["cache_write_tokens"] == 3072
    assert expected["gpt-4.1-2025-04-14"]["input_uncached_tokens"] == 8427


@pytest.mark.django_db
def test_litellm_sample_through_the_pipeline_costs_the_same_to_the_nano(ingest):
    ingest("litellm_spend_logs", LITELLM)
    total = UsageFact.objects.aggregate(cost=Sum("cost_nanos"), reported=Sum("reported_cost_nanos"))
    assert total == {"cost": 198_305_380, "reported": 198_305_380}
    assert cents(Decimal(total["cost"]) / 10**9) == Decimal("0.20")


def test_openai_usage_pages_match_the_independent_checker(ingest):
    run = ingest("openai_usage", *OPENAI_PAGES)

    assert (run.rows, run.accepted, run.duplicates, run.replaced, run.rejected) == (21, 21, 0, 0, 0)
    expected = openai_usage_expected(OPENAI_PAGES)
    stored = assert_matches_checker(expected)
    assert sum(row["cost"] for row in stored.values()) == 51_072_706_800  # $51.0727068
    assert sum(row["requests"] for row in stored.values()) == 19_605


def test_openai_usage_input_already_contains_cached_tokens(ingest):
    ingest("openai_usage", OPENAI_PAGES[0])
    fact = UsageFact.objects.get(
        model__name="gpt-4.1-2025-04-14",
        ts__date="2026-08-03",
        raw_identity__fields__project="proj_Plat7xQ2mRt",
    )
    # 1,100,195 input of which 472,960 cached: 627,235 uncached, each priced once at its own rate.
    assert (fact.input_uncached_tokens, fact.cache_read_tokens, fact.output_tokens, fact.requests) == (
        627_235,
        472_960,
        82_695,
        185,
    )
    assert fact.cost_nanos == 627_235 * 2_000 + 472_960 * 500 + 82_695 * 8_000  # $2, $0.50, $8 per MTok
