"""OpenRouter: the activity export (billing: what OpenRouter charged per day and endpoint) and the
generation records (telemetry: one request each, priced by us at the endpoint's list price).

Expected figures come from the files themselves (plain json, Decimal) and from genai-prices'
calc_price, never from the adapters.
"""

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

from django.db.models import Sum
from genai_prices import Usage, calc_price

from apps.ingestion.models import RejectedRow
from apps.usage.models import Grain, UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "openrouter"
ACTIVITY = DIR / "activity_normal.json"
REPULL = DIR / "activity_repull_grown.json"
ACTIVITY_QUIRKS = DIR / "activity_quirks.json"
GENERATIONS = DIR / "generations_normal.jsonl"
GENERATION_QUIRKS = DIR / "generations_quirks.jsonl"

KINDS = ("input", "cache_read", "cache_write", "output", "reasoning", "requests", "cost", "reported")
# OpenRouter's endpoint -> (genai-prices provider, how the catalog stores the provider).
ENDPOINTS = {
    "OpenAI": ("openai", "openai"),
    "Anthropic": ("anthropic", "anthropic"),
    "Google Vertex": ("google", "google"),
    "Google AI Studio": ("google", "google"),
    "Groq": ("groq", "groq"),
}


def stored() -> dict[tuple[str, str], dict]:
    rows = UsageFact.objects.values("provider__slug", "model__name").annotate(
        input=Sum("input_uncached_tokens"),
        cache_read=Sum("cache_read_tokens"),
        cache_write=Sum("cache_write_5m_tokens") + Sum("cache_write_1h_tokens"),
        output=Sum("output_tokens"),
        reasoning=Sum("reasoning_tokens"),
        requests=Sum("requests"),
        cost=Sum("cost_nanos"),
        reported=Sum("reported_cost_nanos"),
    )
    return {(row.pop("provider__slug"), row.pop("model__name")): row for row in rows}


def nanos(amount) -> int:
    return int((Decimal(str(amount)) * 10**9).to_integral_value())


def activity_expected(*paths) -> dict[tuple[str, str], dict]:
    """Per (provider, model): the last file's version of each (date, endpoint) wins."""
    items = {}
    for path in paths:
        for item in json.loads(path.read_text(), parse_float=Decimal)["data"]:
            items[(item["date"], item["endpoint_id"])] = item
    totals: dict[tuple[str, str], dict] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    for item in items.values():
        key = (ENDPOINTS[item["provider_name"]][1], item["model_permaslug"].split("/", 1)[1])
        amount = nanos(item["usage"])
        for kind, value in (
            ("input", item["prompt_tokens"]),
            ("output", item["completion_tokens"]),
            ("reasoning", item["reasoning_tokens"]),
            ("requests", item["requests"]),
            ("cost", amount),
            ("reported", amount),
        ):
            totals[key][kind] += value
    return dict(totals)


def test_activity_rows_are_billing_lines_whose_charge_is_the_cost(ingest):
    run = ingest("openrouter_activity", ACTIVITY)

    assert (run.rows, run.accepted, run.duplicates, run.replaced, run.rejected) == (15, 15, 0, 0, 0)
    assert stored() == activity_expected(ACTIVITY)
    # Written out from the file: $12.799245 charged over 2,410 requests in three days.
    totals = UsageFact.objects.aggregate(
        cost=Sum("cost_nanos"), requests=Sum("requests"), out=Sum("output_tokens")
    )
    assert totals == {"cost": 12_799_245_000, "requests": 2_410, "out": 710_674}
    assert set(UsageFact.objects.values_list("grain", flat=True)) == {Grain.DAY}
    # Claude through two endpoints: one model, two providers, two rows a day.
    sonnet = stored()[("google", "claude-sonnet-4-20250514")]
    assert (sonnet["input"], sonnet["output"], sonnet["requests"]) == (941_958, 187_751, 739)


def test_reingesting_the_activity_changes_nothing(ingest):
    ingest("openrouter_activity", ACTIVITY)
    before = stored()

    again = ingest("openrouter_activity", ACTIVITY)

    assert (again.accepted, again.duplicates, again.replaced) == (0, 15, 0)
    assert stored() == before
    assert UsageFact.objects.count() == 15


def test_a_repulled_day_that_grew_replaces_the_stored_one_in_either_order(ingest):
    ingest("openrouter_activity", ACTIVITY, source="first")
    repull = ingest("openrouter_activity", REPULL, source="first")
    # 10 days repeated (one grew), 2 new rows for 08-06.
    assert (repull.rows, repull.accepted, repull.duplicates, repull.replaced) == (12, 2, 9, 1)

    late = ingest("openrouter_activity", REPULL, source="second")
    early = ingest("openrouter_activity", ACTIVITY, source="second")
    assert (late.accepted, early.accepted, early.duplicates, early.replaced) == (12, 5, 10, 0)

    expected = activity_expected(ACTIVITY, REPULL)
    for source in ("first", "second"):
        grown = UsageFact.objects.get(
            source__name=source, ts=dt.datetime(2026, 8, 5, tzinfo=dt.UTC), provider__slug="openai"
        )
        assert (grown.requests, grown.input_uncached_tokens, grown.output_tokens, grown.cost_nanos) == (
            150,
            370_000,
            86_000,
            1_428_000_000,
        )
        facts = UsageFact.objects.filter(source__name=source)
        assert facts.count() == 17
        assert facts.aggregate(cost=Sum("cost_nanos"))["cost"] == sum(m["cost"] for m in expected.values())
    # $12.799245 - $1.397664 + $1.428 + $0.048 + $0.00748
    assert sum(m["cost"] for m in expected.values()) == 12_885_061_000


def test_activity_quirks_and_bad_rows(ingest):
    run = ingest("openrouter_activity", ACTIVITY_QUIRKS)

    assert (run.rows, run.accepted, run.rejected) == (15, 7, 8)
    byok = UsageFact.objects.get(record_key__endswith="c0ffee00-0000-4000-8000-00000000b10c")
    # OpenRouter's fee ("0.0125", a string) only: the $0.25 inference on the customer's own key is on
    # the provider's invoice, and counts when that is loaded.
    assert (byok.cost_nanos, byok.reported_cost_nanos, byok.reasoning_tokens) == (12_500_000, 12_500_000, 0)
    unknown = UsageFact.objects.get(model__name="secret-model-v9")
    assert (unknown.provider.slug, unknown.cost_nanos, unknown.input_uncached_tokens) == (
        "acme clöud 云",
        15_000_000,  # 1.5e-2: a bill stands even for a model no price list knows
        1_200,
    )
    big = UsageFact.objects.get(model__name="gemini-2.5-flash")
    assert (big.input_uncached_tokens, big.output_tokens, big.reasoning_tokens, big.cost_nanos) == (
        5_000_000_000,
        4_294_967_297,
        4_294_967_296,
        12_345_678_901_234,
    )
    zero = UsageFact.objects.get(model__name="gpt-4.1-2025-04-14")
    assert (zero.input_uncached_tokens, zero.requests, zero.cost_nanos) == (0, 0, 0)
    workspaces = UsageFact.objects.filter(model__name="claude-sonnet-4-20250514", raw_identity__isnull=False)
    assert sorted((f.raw_identity.fields["project"], f.cost_nanos) for f in workspaces) == [
        ("ws-platform", 100_000_000),
        ("ws-support", 200_000_000),
    ]
    own = UsageFact.objects.get(model__name="openai/gpt-4.1-mini")
    assert (own.provider.slug, own.cost_nanos) == ("openrouter", 1_000_000)

    rejected = [(r.file, r.line, r.field) for r in RejectedRow.objects.order_by("line")]
    assert rejected == [
        ("activity_quirks.json", 8, "usage"),
        ("activity_quirks.json", 9, "prompt_tokens"),
        ("activity_quirks.json", 10, "date"),
        ("activity_quirks.json", 11, "reasoning_tokens"),
        ("activity_quirks.json", 12, "requests"),
        ("activity_quirks.json", 13, "(record)"),
        ("activity_quirks.json", 14, "usage"),
        ("activity_quirks.json", 15, "endpoint_id"),
    ]
    assert "negative" in RejectedRow.objects.get(line=9).reason
    assert json.loads(RejectedRow.objects.get(line=9).raw)["endpoint_id"] == "bad-0002"


# --- generation records -----------------------------------------------------------------------------


def generation_cost(generation: dict, provider: str, model: str) -> int:
    price = calc_price(
        Usage(
            input_tokens=generation["native_tokens_prompt"],
            cache_read_tokens=generation["native_tokens_cached"] or 0,
            output_tokens=generation["native_tokens_completion"],
        ),
        model,
        provider_id=provider,
        genai_request_timestamp=dt.datetime.fromisoformat(generation["created_at"]),
    ).total_price
    return int((price * 10**9).to_integral_value())


def test_generations_are_priced_at_the_endpoints_list_price(ingest):
    run = ingest("openrouter_generations", GENERATIONS)

    assert (run.rows, run.accepted, run.duplicates, run.rejected) == (8, 8, 0, 0)
    generations = [json.loads(line)["data"] for line in GENERATIONS.read_text().splitlines()]
    expected: dict[tuple[str, str], dict] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    for generation in generations:
        price_provider, slug = ENDPOINTS[generation["provider_name"]]
        model = generation["model"].split("/", 1)[1]
        totals = expected[(slug, model)]
        totals["input"] += generation["native_tokens_prompt"] - generation["native_tokens_cached"]
        totals["cache_read"] += generation["native_tokens_cached"]
        totals["output"] += generation["native_tokens_completion"]
        totals["reasoning"] += generation["native_tokens_reasoning"]
        totals["requests"] += 1
        totals["reported"] += nanos(generation["total_cost"])
        if model == "llama-3.3-70b-instruct":
            totals["cost"] = None  # Groq calls it llama-3.3-70b-versatile: unpriced, not $0
        else:
            totals["cost"] += generation_cost(generation, price_provider, model)
    assert stored() == expected
    # OpenRouter charged each endpoint's list price: our figure equals its total_cost to the nano.
    priced = UsageFact.objects.exclude(cost_nanos=None)
    assert priced.count() == 7
    assert all(fact.cost_nanos == fact.reported_cost_nanos for fact in priced)
    assert priced.aggregate(cost=Sum("cost_nanos"))["cost"] == 78_189_000  # $0.0789536 - Llama's $0.0007646
    alice = UsageFact.objects.get(record_key="gen-kpINXqh73FQnlPU8cOmgpCdA").raw_identity.fields
    assert alice == {"user": "alice.nguyen@northwind.example", "project": "48213"}


def test_generation_quirks_overlap_and_bad_lines(ingest):
    ingest("openrouter_generations", GENERATIONS)
    before = stored()

    run = ingest("openrouter_generations", GENERATION_QUIRKS)

    assert (run.rows, run.accepted, run.duplicates, run.rejected) == (17, 8, 1, 8)
    assert (
        stored()[("openai", "gpt-4.1-2025-04-14")]["requests"]
        == before[("openai", "gpt-4.1-2025-04-14")]["requests"] + 3
    )  # fallback, error and zero-token requests; the overlapping one counted once

    def fact(key: str) -> UsageFact:
        return UsageFact.objects.get(record_key=key)

    byok = fact("gen-byok-1")
    # Priced: 2,000 in x $3 + 200 out x $15 per MTok. Reported: OpenRouter's fee + the provider's charge.
    assert (byok.cost_nanos, byok.reported_cost_nanos) == (9_000_000, 481_000 + 9_620_000)
    assert byok.raw_identity.fields["user"] == "zoë.müller@northwind.example"
    fallback = fact("gen-fallback-1")  # no native counts: OpenRouter's own counts stand in
    assert (fallback.input_uncached_tokens, fallback.output_tokens, fallback.cost_nanos) == (
        1_000,
        100,
        2_800_000,
    )
    assert fallback.ts == dt.datetime(2026, 8, 5, 9, tzinfo=dt.UTC)  # naive time read as UTC
    cancelled = fact("gen-cancel-1")
    assert (
        cancelled.failed,
        cancelled.reasoning_tokens,
        cancelled.cost_nanos,
        cancelled.reported_cost_nanos,
    ) == (
        False,
        10,
        130_000,  # 100 x $0.30 + 40 x $2.50 per MTok
        130_000,
    )
    error = fact("gen-error-1")
    assert (error.failed, error.cost_nanos) == (True, 0)
    assert (fact("gen-unknown-1").cost_nanos, fact("gen-unknown-1").reported_cost_nanos) == (None, 1_000_000)
    assert fact("gen-zero-1").cost_nanos == 0
    big = fact("gen-big-1")
    assert (big.input_uncached_tokens, big.cache_read_tokens, big.output_tokens, big.reasoning_tokens) == (
        705_032_704,
        4_294_967_296,
        3_000_000_000,
        1_000_000_000,
    )
    assert big.cost_nanos == generation_cost(
        {
            "native_tokens_prompt": 5_000_000_000,
            "native_tokens_cached": 4_294_967_296,
            "native_tokens_completion": 3_000_000_000,
            "created_at": "2026-08-05T14:00:00+00:00",
        },
        "google",
        "gemini-2.5-flash",
    )
    assert big.reported_cost_nanos == 9_000_500_000_000
    own = fact("gen-noprov-1")  # no endpoint named: OpenRouter's own model id and price
    assert (own.provider.slug, own.model.name) == ("openrouter", "openai/gpt-4.1-mini")
    assert own.cost_nanos == generation_cost(
        {
            "native_tokens_prompt": 1000,
            "native_tokens_cached": 0,
            "native_tokens_completion": 50,
            "created_at": "2026-08-05T15:00:00+00:00",
        },
        "openrouter",
        "openai/gpt-4.1-mini",
    )

    rejected = [(r.line, r.field) for r in RejectedRow.objects.order_by("line")]
    assert rejected == [
        (10, "(line)"),
        (11, "id"),
        (12, "native_tokens_prompt"),
        (13, "native_tokens_cached"),
        (14, "created_at"),
        (15, "total_cost"),
        (16, "native_tokens_completion"),
        (17, "data"),
    ]
    assert RejectedRow.objects.get(line=13).reason == "900 is more than native_tokens_prompt (100)"
    assert RejectedRow.objects.get(line=10).raw.startswith('{"data": {"id": "gen-broken"')

    again = ingest("openrouter_generations", GENERATIONS, GENERATION_QUIRKS)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 17, 8)
