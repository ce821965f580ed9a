"""Helicone request query pages: one row per request; Anthropic requests report prompt_tokens without
the cache, OpenAI ones with it; costUSD (and the newer `cost`) are dollars.

Expected figures come from the files (plain json) and genai-prices' calc_price, not from the adapter.
"""

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

from django.db.models import Sum
from genai_prices import Usage, calc_price

from apps.ingestion.models import RejectedRow, RunStatus
from apps.usage.models import UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "helicone"
PAGES = [DIR / "requests_query_normal_page1.json", DIR / "requests_query_normal_page2.json"]
OVERLAP = DIR / "requests_query_overlap_page2.json"
QUIRKS = DIR / "requests_quirks.jsonl"
ERROR_PAGE = DIR / "requests_query_error_page.json"

KINDS = ("input", "cache_read", "cache_write", "output", "requests", "cost", "reported")


def stored() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        input=Sum("input_uncached_tokens"),
        cache_read=Sum("cache_read_tokens"),
        cache_write=Sum("cache_write_5m_tokens") + Sum("cache_write_1h_tokens"),
        output=Sum("output_tokens"),
        requests=Sum("requests"),
        cost=Sum("cost_nanos"),
        reported=Sum("reported_cost_nanos"),
    )
    return {row.pop("model__name"): row for row in rows}


def nanos(amount) -> int:
    return int((amount * 10**9).to_integral_value())


def expected_from(*paths) -> dict[str, dict]:
    """Per model, each request_id once; Anthropic's prompt_tokens are uncached, OpenAI's include the cache."""
    requests = {}
    for path in paths:
        for record in json.loads(path.read_text())["data"]:
            requests.setdefault(record["request_id"], record)
    totals: dict[str, dict] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    for record in requests.values():
        read, write = record["prompt_cache_read_tokens"], record["prompt_cache_write_tokens"]
        anthropic = record["provider"] == "ANTHROPIC"
        total_input = record["prompt_tokens"] + (read + write if anthropic else 0)
        price = calc_price(
            Usage(
                input_tokens=total_input,
                cache_read_tokens=read,
                cache_write_tokens=write,
                output_tokens=record["completion_tokens"],
            ),
            record["model"],
            provider_id=record["provider"].lower(),
            genai_request_timestamp=dt.datetime.fromisoformat(record["request_created_at"]),
        ).total_price
        model = totals[record["model"]]
        model["input"] += total_input - read - write
        model["cache_read"] += read
        model["cache_write"] += write
        model["output"] += record["completion_tokens"]
        model["requests"] += 1
        model["cost"] += nanos(price)
        model["reported"] += nanos(Decimal(repr(record["costUSD"])))
    return dict(totals)


def test_pages_match_the_independent_checker_and_helicones_own_cost(ingest):
    run = ingest("helicone", *PAGES)

    assert (run.rows, run.accepted, run.duplicates, run.replaced, run.rejected) == (9, 9, 0, 0, 0)
    assert stored() == expected_from(*PAGES)
    # Helicone's costUSD is list price too: ours agrees with it on every request, to the nano.
    assert all(fact.cost_nanos == fact.reported_cost_nanos for fact in UsageFact.objects.all())
    assert (
        UsageFact.objects.aggregate(cost=Sum("cost_nanos"))["cost"] == 40_782_320
    )  # $0.04078232, the sum of costUSD
    haiku = UsageFact.objects.get(record_key="7833da15-499f-48ab-bb37-2f163e31e9c2")
    # Anthropic: 566 prompt tokens are all uncached; the 2,048 cache reads come on top.
    assert (haiku.input_uncached_tokens, haiku.cache_read_tokens, haiku.output_tokens) == (566, 2_048, 322)
    mini = UsageFact.objects.get(record_key="4c637ef0-0efc-474d-b02f-81cc6131cd1e")
    # OpenAI: 1,168 prompt tokens include the 384 cache reads.
    assert (mini.input_uncached_tokens, mini.cache_read_tokens, mini.cost_nanos) == (784, 384, 1_324_800)
    assert mini.raw_identity.fields == {
        "user": "alice.nguyen@northwind.example",
        "gateway_team": "platform",
        "project": "copilot",
    }


def test_shifted_pages_and_a_second_ingest_add_only_new_requests(ingest):
    ingest("helicone", *PAGES)
    before = stored()

    shifted = ingest("helicone", OVERLAP)
    assert (shifted.rows, shifted.accepted, shifted.duplicates) == (6, 1, 5)
    after = stored()
    assert after["gpt-4.1-mini-2025-04-14"]["requests"] == before["gpt-4.1-mini-2025-04-14"]["requests"] + 1
    assert after == expected_from(*PAGES, OVERLAP)

    again = ingest("helicone", *PAGES, OVERLAP)
    assert (again.accepted, again.duplicates) == (0, 15)
    assert stored() == after


def test_quirks_and_bad_rows(ingest):
    run = ingest("helicone", QUIRKS)

    assert (run.rows, run.accepted, run.rejected) == (16, 8, 8)

    def fact(key: str) -> UsageFact:
        return UsageFact.objects.get(record_key=key)

    claude = fact("q-bedrock-claude")  # Claude on Bedrock reports usage the Anthropic way
    assert (claude.input_uncached_tokens, claude.cache_read_tokens, claude.cache_write_5m_tokens) == (
        500,
        1_000,
        200,
    )
    assert claude.provider.slug == "aws"
    assert claude.cost_nanos == 1_080_000  # 500 x $0.80 + 1,000 x $0.08 + 200 x $1 + 100 x $4 per MTok
    hit = fact("q-cache-hit")  # answered from Helicone's cache: no provider tokens
    assert (
        hit.input_uncached_tokens,
        hit.cache_read_tokens,
        hit.output_tokens,
        hit.requests,
        hit.cost_nanos,
    ) == (
        0,
        0,
        0,
        1,
        0,
    )
    assert hit.reported_cost_nanos == 1_324_800  # as Helicone reported it
    failed = fact("q-failed")
    assert (failed.failed, failed.cost_nanos, failed.reported_cost_nanos) == (True, 0, None)
    newer = fact("q-newer-page")  # `cost` in dollars; reasoning apart from completion
    assert (newer.output_tokens, newer.reasoning_tokens, newer.reported_cost_nanos) == (500, 300, 3_300_000)
    assert newer.cost_nanos == nanos(
        calc_price(
            Usage(input_tokens=1000, output_tokens=500),
            "o4-mini-2025-04-16",
            provider_id="openai",
            genai_request_timestamp=dt.datetime(2026, 8, 5, 8, 40, tzinfo=dt.UTC),
        ).total_price
    )
    unknown = fact("q-unknown-model")
    assert (unknown.cost_nanos, unknown.reported_cost_nanos) == (None, 1_230_000)
    unicode = fact("q-unicode")
    assert unicode.raw_identity.fields == {
        "user": "zoë@northwind.example",
        "gateway_team": "Platform ✓",
        "tag": "résumé-parsing",
    }
    assert unicode.cost_nanos == 112_000  # 200 x $0.40 + 20 x $1.60 per MTok
    minimal = fact("q-minimal")
    assert (minimal.cost_nanos, minimal.reported_cost_nanos, minimal.raw_identity_id) == (12_000, None, None)
    big = fact("q-big")
    assert (big.input_uncached_tokens, big.cache_read_tokens, big.output_tokens) == (
        6_000_000_000 - 4_294_967_296,
        4_294_967_296,
        8_589_934_592,
    )
    assert big.ts == dt.datetime(2026, 8, 5, 10, tzinfo=dt.UTC)  # 12:00 at +02:00
    # $2, $0.50, $8 per MTok for gpt-4.1
    assert big.cost_nanos == 1_705_032_704 * 2_000 + 4_294_967_296 * 500 + 8_589_934_592 * 8_000
    assert big.reported_cost_nanos == 15_000_000_000_000

    rejected = [(r.file, r.line, r.field) for r in RejectedRow.objects.order_by("line")]
    assert rejected == [
        ("requests_quirks.jsonl", 4, "response_status"),
        ("requests_quirks.jsonl", 10, "prompt_tokens"),
        ("requests_quirks.jsonl", 11, "request_id"),
        ("requests_quirks.jsonl", 12, "completion_tokens"),
        ("requests_quirks.jsonl", 13, "request_created_at"),
        ("requests_quirks.jsonl", 14, "response_status"),
        ("requests_quirks.jsonl", 15, "costUSD"),
        ("requests_quirks.jsonl", 16, "(line)"),
    ]
    assert RejectedRow.objects.get(line=4).reason == "is -1 (no response yet): ingest it from a later export"
    assert RejectedRow.objects.get(line=10).reason == (
        "100 is less than its cache reads (500) and writes (0), which it includes for provider OPENAI"
    )
    assert json.loads(RejectedRow.objects.get(line=12).raw)["request_id"] == "q-bad-negative"


def test_an_error_page_is_reported_not_ingested(ingest):
    run = ingest("helicone", ERROR_PAGE)

    assert run.status == RunStatus.COMPLETED
    assert (run.rows, run.accepted, run.rejected) == (1, 0, 1)
    error = RejectedRow.objects.get()
    assert (error.line, error.field) == (1, "error")
    assert error.reason == "the page is an error response: Rate limit exceeded, retry after 60 seconds"
