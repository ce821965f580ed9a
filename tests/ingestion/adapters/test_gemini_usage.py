"""Gemini `usageMetadata`: cached tokens come out of the prompt, thoughts go into output (they are not in
candidates), tool-use prompt is input; a stream counts once; list cost to the nano-dollar (FORMATS.md §5.2)."""

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

from django.db.models import Count, Sum
from genai_prices import Usage, calc_price

from apps.ingestion.models import RejectedRow
from apps.usage.models import UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "vertex_gemini"
NORMAL = DIR / "generate_content_responses_normal.jsonl"
STREAM = DIR / "generate_content_responses_stream.jsonl"
QUIRKS = DIR / "generate_content_responses_quirks.jsonl"
BAD_ROWS = DIR / "generate_content_responses_bad_rows.jsonl"
COLUMNS = ("input_uncached_tokens", "cache_read_tokens", "output_tokens", "reasoning_tokens", "requests")


def expected_from_responses(path) -> dict[str, dict]:
    """Per model with plain json, priced by genai-prices from the response's own counts."""
    totals: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
    for line in path.read_text().splitlines():
        response = json.loads(line)
        usage = response["usageMetadata"]
        prompt, cached = usage["promptTokenCount"], usage.get("cachedContentTokenCount", 0)
        tool, thoughts = usage.get("toolUsePromptTokenCount", 0), usage.get("thoughtsTokenCount", 0)
        output = usage["candidatesTokenCount"] + thoughts
        assert prompt + usage["candidatesTokenCount"] + tool + thoughts == usage["totalTokenCount"]
        model = totals[response["modelVersion"]]
        model["input_uncached_tokens"] += prompt - cached + tool
        model["cache_read_tokens"] += cached
        model["output_tokens"] += output
        model["reasoning_tokens"] += thoughts
        model["requests"] += 1
        model["cost"] += calc_price(
            Usage(
                input_tokens=prompt + tool,
                cache_read_tokens=cached,
                output_tokens=output,
                output_reasoning_tokens=thoughts,
            ),
            response["modelVersion"],
            provider_id="google",
            genai_request_timestamp=dt.datetime.fromisoformat(response["createTime"]),
        ).total_price
    return {name: dict(values) for name, values in totals.items()}


def stored_by_model() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        cost=Sum("cost_nanos"), **{column: Sum(column) for column in COLUMNS}
    )
    return {row.pop("model__name"): row for row in rows}


def ledger() -> dict:
    return UsageFact.objects.aggregate(
        rows=Count("id"), cost=Sum("cost_nanos"), **{column: Sum(column) for column in COLUMNS}
    )


def test_the_sample_responses_give_exact_totals_per_model(ingest):
    run = ingest("gemini_usage", NORMAL)

    assert run.summary() == {
        "run": run.pk,
        "rows": 10,
        "accepted": 10,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    expected = expected_from_responses(NORMAL)
    stored = stored_by_model()
    assert set(stored) == {"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash-001"} == set(expected)
    for model, want in expected.items():
        assert {column: stored[model][column] for column in COLUMNS} == {
            column: want[column] for column in COLUMNS
        }, model
        assert Decimal(stored[model]["cost"]) / 10**9 == want["cost"], model
    # By hand, the first response: 59,993 prompt of which 32,768 cached; 2,312 candidates + 2,691 thoughts.
    first = UsageFact.objects.get(record_key="WHK31dDUvCjoH4Ln6sHJFM")
    assert (first.input_uncached_tokens, first.cache_read_tokens) == (27_225, 32_768)
    assert (first.output_tokens, first.reasoning_tokens) == (5_003, 2_691)
    # Gemini 2.5 Pro at $1.25 input, $0.125 cached, $10 output per MTok (prompt under 200K).
    assert first.cost_nanos == 27_225 * 1_250 + 32_768 * 125 + 5_003 * 10_000
    # Tool-use prompt is input: 370 prompt + 63 from tools.
    tool = UsageFact.objects.get(record_key="b0L4VrUJIJmT7Np5V5Fx4p")
    assert (tool.input_uncached_tokens, tool.output_tokens) == (433, 68)


def test_a_streamed_response_counts_once_with_its_final_usage(ingest):
    run = ingest("gemini_usage", STREAM)

    # Seven chunks of three streams: two finished (their last chunk), one cut off (its last chunk).
    assert (run.rows, run.accepted, run.rejected) == (3, 3, 0)
    facts = {fact.record_key[:5]: fact for fact in UsageFact.objects.all()}
    pro, flash, cut = facts["strmB"], facts["strmA"], facts["strmC"]
    assert (pro.input_uncached_tokens, pro.cache_read_tokens, pro.output_tokens, pro.reasoning_tokens) == (
        288,
        512,
        260,
        200,
    )
    assert (flash.input_uncached_tokens, flash.output_tokens, flash.reasoning_tokens) == (1_200, 395, 300)
    assert (cut.input_uncached_tokens, cut.output_tokens) == (400, 35)
    assert flash.cost_nanos == 1_200 * 300 + 395 * 2_500
    assert ledger()["requests"] == 3

    again = ingest("gemini_usage", STREAM)
    assert (again.accepted, again.duplicates) == (0, 3)


def test_quirks_snake_case_omitted_fields_and_unknown_models(ingest):
    ingest("gemini_usage", NORMAL)
    before = ledger()
    run = ingest("gemini_usage", QUIRKS)

    # Nine responses; one repeats the sample.
    assert (run.rows, run.accepted, run.duplicates, run.rejected) == (9, 8, 1, 0)
    facts = {
        fact.record_key[:6]: fact for fact in UsageFact.objects.filter(run_id=run.pk).select_related("model")
    }
    # The Python SDK's model_dump(): snake_case with explicit nulls.
    assert (facts["snake0"].input_uncached_tokens, facts["snake0"].output_tokens) == (1_500, 200)
    assert facts["snake0"].cost_nanos == 1_500 * 300 + 200 * 2_500
    # A blocked prompt: no candidates, omitted zero counts.
    assert (facts["blocke"].input_uncached_tokens, facts["blocke"].output_tokens) == (50, 0)
    assert facts["unknow"].cost_nanos is None
    # Past 2**32: Gemini 2.0 Flash at $0.10 input, $0.025 cached, $0.40 output per MTok.
    huge = facts["huge00"]
    assert (huge.input_uncached_tokens, huge.cache_read_tokens) == (705_032_704, 4_294_967_296)
    assert huge.cost_nanos == 70_503_270_400 + 107_374_182_400 + 400
    assert facts["offset"].ts == dt.datetime(2026, 8, 5, 10, 30, 0, 500_000, tzinfo=dt.UTC)
    assert (facts["offset"].output_tokens, facts["offset"].reasoning_tokens) == (50, 30)
    # No createTime (Gemini API): the logger's timestamp; its labels as identity, `task` as our tag.
    studio = facts["studio"]
    assert studio.ts == dt.datetime(2026, 8, 5, 10, 5, tzinfo=dt.UTC)
    assert studio.raw_identity.fields == {"team": "platform", "tag": "code-review"}
    assert (facts["zero00"].input_uncached_tokens, facts["zero00"].cost_nanos) == (0, 0)
    # A resource path as the model version is the model.
    unicode = facts["unicod"]
    assert (unicode.model.name, unicode.input_uncached_tokens) == ("gemini-2.5-flash", 460)
    assert unicode.cost_nanos == 460 * 300 + 40 * 2_500
    assert unicode.raw_identity.fields == {"team": "données"}

    assert ledger()["requests"] == before["requests"] + 8
    again = ingest("gemini_usage", QUIRKS)
    assert (again.accepted, again.duplicates) == (0, 9)


def test_bad_responses_are_reported_by_line_and_field_and_good_ones_kept(ingest):
    run = ingest("gemini_usage", BAD_ROWS)

    assert (run.rows, run.accepted, run.rejected) == (12, 2, 10)
    rejected = [(row.line, row.field) for row in RejectedRow.objects.order_by("line")]
    assert rejected == [
        (2, "responseId"),
        (3, "usageMetadata.promptTokenCount"),
        (4, "usageMetadata.thoughtsTokenCount"),
        (5, "createTime"),
        (6, "usageMetadata"),
        (7, "modelVersion"),
        (8, "usageMetadata.candidatesTokenCount"),
        (9, "(line)"),
        (10, "(record)"),
        (12, "usage_metadata.prompt_token_count"),
    ]
    assert "less than its cached part" in RejectedRow.objects.get(line=3).reason
    assert json.loads(RejectedRow.objects.get(line=4).raw)["usageMetadata"]["thoughtsTokenCount"] == -1
    assert ledger() == {
        "rows": 2,
        "cost": 2 * (1_000 * 300 + 150 * 2_500),
        "input_uncached_tokens": 2_000,
        "cache_read_tokens": 0,
        "output_tokens": 300,
        "reasoning_tokens": 100,
        "requests": 2,
    }
