"""OpenTelemetry GenAI spans (OTLP/JSON): one row per model call; an agent or workflow span that repeats
its children's usage is never counted on top of them (TESTPLAN A8).

Expected figures come from the files (plain json) and genai-prices' calc_price, not from the adapter.
"""

import base64
import datetime as dt
import json
from collections import defaultdict

from django.db.models import Sum
from genai_prices import Usage, calc_price

from apps.ingestion.models import RejectedRow
from apps.usage.models import UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "otel_genai"
NORMAL = DIR / "otlp_traces_normal.json"
AGENT = DIR / "agent_trace_parent_usage.json"
QUIRKS = DIR / "otlp_quirks.jsonl"

KINDS = ("input", "cache_read", "cache_write", "output", "reasoning", "requests", "cost")
PRICE_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gcp.vertex_ai": "google"}


def stored() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        input=Sum("input_uncached_tokens"),
        cache_read=Sum("cache_read_tokens"),
        cache_write=Sum("cache_write_5m_tokens") + Sum("cache_write_1h_tokens"),
        output=Sum("output_tokens"),
        reasoning=Sum("reasoning_tokens"),
        requests=Sum("requests"),
        cost=Sum("cost_nanos"),
    )
    return {row.pop("model__name"): row for row in rows}


def model_calls(path) -> list[dict]:
    """Every chat / generate_content span of an OTLP/JSON document, its attributes as a plain dict."""
    calls = []
    for resource_spans in json.loads(path.read_text())["resourceSpans"]:
        for scope in resource_spans["scopeSpans"]:
            for span in scope["spans"]:
                attributes = {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}
                if attributes.get("gen_ai.operation.name") in ("chat", "generate_content"):
                    calls.append({"span": span, **attributes})
    return calls


def expected_from(path) -> dict[str, dict]:
    totals: dict[str, dict] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    for call in model_calls(path):
        total_input = int(call["gen_ai.usage.input_tokens"])
        read = int(call.get("gen_ai.usage.cache_read.input_tokens", 0))
        write = int(call.get("gen_ai.usage.cache_creation.input_tokens", 0))
        output = int(call["gen_ai.usage.output_tokens"])
        model = call["gen_ai.response.model"]
        started = dt.datetime.fromtimestamp(int(call["span"]["startTimeUnixNano"]) // 10**9, tz=dt.UTC)
        price = calc_price(
            Usage(
                input_tokens=total_input,
                cache_read_tokens=read,
                cache_write_tokens=write,
                output_tokens=output,
            ),
            model,
            provider_id=PRICE_PROVIDERS[call["gen_ai.provider.name"]],
            genai_request_timestamp=started,
        ).total_price
        row = totals[model]
        row["input"] += total_input - read - write
        row["cache_read"] += read
        row["cache_write"] += write
        row["output"] += output
        row["reasoning"] += int(call.get("gen_ai.usage.reasoning.output_tokens", 0))
        row["requests"] += 1
        row["cost"] += int((price * 10**9).to_integral_value())
    return dict(totals)


def test_model_call_spans_match_the_independent_checker(ingest):
    run = ingest("otel_genai", NORMAL)

    # 11 spans: 9 model calls; the agent span and the tool span are not usage.
    assert (run.rows, run.accepted, run.duplicates, run.rejected) == (9, 9, 0, 0)
    assert stored() == expected_from(NORMAL)
    review = UsageFact.objects.get(record_key="447ba5577444eafafaeacd6321d87fbe/59719b2940160d1f")
    # 33,674 input includes 24,000 cache reads and 6,000 cache writes.
    assert (review.input_uncached_tokens, review.cache_read_tokens, review.cache_write_5m_tokens) == (
        3_674,
        24_000,
        6_000,
    )
    assert review.ts == dt.datetime(2026, 8, 3, 14, 0, 10, tzinfo=dt.UTC)
    assert review.raw_identity.fields == {
        "user": "alice.nguyen@northwind.example",
        "project": "platform-copilot",
        "gateway_team": "platform",
        "tag": "code-review",
    }
    gemini = stored()["gemini-2.5-flash"]
    assert (gemini["output"], gemini["reasoning"]) == (11_418, 6_946)  # reasoning is part of output

    again = ingest("otel_genai", NORMAL)
    assert (again.accepted, again.duplicates) == (0, 9)
    assert stored() == expected_from(NORMAL)


def test_a_parent_span_carrying_its_childrens_usage_is_not_counted_twice(ingest):
    run = ingest("otel_genai", AGENT)

    # Six spans: a workflow and an agent both repeating the sum, two model calls, a tool, an HTTP call.
    assert (run.rows, run.accepted, run.rejected) == (2, 2, 0)
    totals = UsageFact.objects.aggregate(
        input=Sum("input_uncached_tokens"),
        read=Sum("cache_read_tokens"),
        write=Sum("cache_write_5m_tokens"),
        out=Sum("output_tokens"),
        cost=Sum("cost_nanos"),
    )
    # Children: (12,000 - 10,000) + (18,000 - 10,000 - 2,000) uncached; the parents' sum is not added.
    assert totals == {"input": 8_000, "read": 20_000, "write": 2_000, "out": 1_500, "cost": 60_000_000}
    # $3 in, $0.30 cache read, $3.75 cache write, $15 out per MTok: $0.0165 + $0.0435 = the trace's $0.06.
    assert totals["cost"] == (2_000 * 3_000 + 10_000 * 300 + 500 * 15_000) + (
        6_000 * 3_000 + 10_000 * 300 + 2_000 * 3_750 + 1_000 * 15_000
    )
    trace = base64.b64decode(
        json.loads(AGENT.read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    )
    # base64 ids from a protobuf-JSON encoder are stored as the same hex ids an OTLP exporter sends
    assert sorted(UsageFact.objects.values_list("record_key", flat=True)) == [
        f"{trace.hex()}/0102030405060708",
        f"{trace.hex()}/1112131415161718",
    ]


def test_quirks_overlap_and_bad_spans(ingest):
    ingest("otel_genai", NORMAL)

    run = ingest("otel_genai", QUIRKS)

    # 7 good spans, 1 span already stored, 1 unreadable line, 8 bad spans.
    assert (run.rows, run.accepted, run.duplicates, run.rejected) == (17, 7, 1, 9)

    def span(number: int) -> UsageFact:
        return UsageFact.objects.get(record_key=f"{number:032x}/{number & 0xF:016x}")

    legacy = span(0xA1)  # no operation name, deprecated usage names, user in enduser.id
    assert (legacy.input_uncached_tokens, legacy.output_tokens, legacy.cost_nanos) == (1_000, 100, 560_000)
    assert legacy.raw_identity.fields["user"] == "zoë@acme.example"
    uncached = span(0xA2)  # 500 input below 4,000 cache reads: the input was already uncached
    assert (uncached.input_uncached_tokens, uncached.cache_read_tokens, uncached.cost_nanos) == (
        500,
        4_000,
        920_000,
    )
    thinking = span(0xA3)  # 300 reasoning above 200 output: reported apart, added back
    assert (thinking.output_tokens, thinking.reasoning_tokens, thinking.provider.slug) == (500, 300, "google")
    assert thinking.cost_nanos == 1_000 * 300 + 500 * 2_500
    failed = span(0xA4)
    assert (failed.failed, failed.input_uncached_tokens, failed.cost_nanos) == (True, 0, 0)
    assert span(0xA5).cost_nanos is None  # unknown model: kept, unpriced
    big = span(0xA6)
    assert (big.input_uncached_tokens, big.cache_read_tokens, big.output_tokens) == (
        1_705_032_704,
        4_294_967_296,
        8_589_934_592,
    )
    assert big.cost_nanos == 1_705_032_704 * 400 + 4_294_967_296 * 100 + 8_589_934_592 * 1_600
    assert span(0xA7).cost_nanos == 0

    rejected = [(r.file, r.line, r.field) for r in RejectedRow.objects.order_by("line")]
    assert rejected == [
        ("otlp_quirks.jsonl", 9, "(line)"),
        ("otlp_quirks.jsonl", 10, "gen_ai.usage.input_tokens"),
        ("otlp_quirks.jsonl", 11, "gen_ai.usage.input_tokens"),
        ("otlp_quirks.jsonl", 12, "traceId"),
        ("otlp_quirks.jsonl", 13, "gen_ai.operation.name"),
        ("otlp_quirks.jsonl", 14, "gen_ai.operation.name"),
        ("otlp_quirks.jsonl", 15, "gen_ai.response.model"),
        ("otlp_quirks.jsonl", 16, "startTimeUnixNano"),
        ("otlp_quirks.jsonl", 17, "spanId"),
    ]
    assert RejectedRow.objects.get(line=9).reason.endswith("(file line 3)")
    assert RejectedRow.objects.get(line=11).reason == "token count is negative (-5)"
    assert RejectedRow.objects.get(line=13).reason.startswith("summarize: a span with usage must say")
    # A rejected span comes back as a one-span export request: fixed, it can be ingested again.
    resubmit = json.loads(RejectedRow.objects.get(line=12).raw)["resourceSpans"][0]
    assert resubmit["scopeSpans"][0]["spans"][0]["spanId"] == "000000000000000d"
    assert {"key": "service.name", "value": {"stringValue": "bad-service"}} in resubmit["resource"][
        "attributes"
    ]


def test_a_rejected_span_fixed_and_sent_again_is_counted(ingest, tmp_path):
    ingest("otel_genai", QUIRKS)
    raw = RejectedRow.objects.get(line=11).raw  # input_tokens -5

    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text(raw.replace('"intValue":-5', '"intValue":5') + "\n")
    run = ingest("otel_genai", fixed)

    assert (run.rows, run.accepted, run.rejected) == (1, 1, 0)
    span = UsageFact.objects.get(record_key=f"{0xB2:032x}/{0xC:016x}")
    assert (span.input_uncached_tokens, span.output_tokens, span.raw_identity.fields["project"]) == (
        5,
        1,
        "bad-service",
    )
