"""APIM `ApiManagementGatewayLlmLog`: tokens per model and list cost to the nano-dollar; a streamed
request's chunk records are never counted again; CLI, query-API and portal-CSV shapes (FORMATS.md §4.3)."""

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

from django.db.models import Count, Sum
from genai_prices import Usage, calc_price

from apps.ingestion.models import RejectedRow
from apps.usage.models import UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "azure_openai"
NORMAL = DIR / "apim_llm_log_normal.json"
AZ_CLI = DIR / "apim_llm_log_az_cli.json"
QUERY_API = DIR / "apim_llm_log_query_api.json"
PORTAL = DIR / "apim_llm_log_portal.csv"
BAD_ROWS = DIR / "apim_llm_log_bad_rows.jsonl"
COLUMNS = ("input_uncached_tokens", "output_tokens", "requests")


def expected_from_log(records: list[dict]) -> dict[str, dict]:
    """Per model, from plain JSON: the counts of record 0 of each request, priced with genai-prices."""
    first: dict[str, dict] = {}
    for record in records:
        if int(record["SequenceNumber"]) == 0:
            first.setdefault(record["CorrelationId"], record)
    totals: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
    for record in first.values():
        prompt, completion = int(record["PromptTokens"]), int(record["CompletionTokens"])
        model = totals[record["ModelName"]]
        model["input_uncached_tokens"] += prompt
        model["output_tokens"] += completion
        model["requests"] += 1
        model["cost"] += calc_price(
            Usage(input_tokens=prompt, output_tokens=completion),
            record["ModelName"],
            provider_id="azure",
            genai_request_timestamp=dt.datetime.fromisoformat(record["TimeGenerated"]),
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


def test_the_sample_log_gives_exact_totals_per_model(ingest):
    run = ingest("azure_apim_llm_log", NORMAL)

    assert run.summary() == {
        "run": run.pk,
        "rows": 12,
        "accepted": 12,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    expected = expected_from_log(json.loads(NORMAL.read_text()))
    stored = stored_by_model()
    assert set(stored) == set(expected)
    for model, want in expected.items():
        assert {column: stored[model][column] for column in COLUMNS} == {
            column: want[column] for column in COLUMNS
        }, model
        assert Decimal(stored[model]["cost"]) / 10**9 == want["cost"], model
    # By hand: gpt-4o at $2.50 / $10 per MTok; four requests, 13,137 prompt and 2,578 completion tokens.
    assert stored["gpt-4o-2024-08-06"]["input_uncached_tokens"] == 2_733 + 4_267 + 3_006 + 3_131
    assert stored["gpt-4o-2024-08-06"]["cost"] == 13_137 * 2_500 + 2_578 * 10_000
    assert UsageFact.objects.filter(raw_identity__fields__deployment="gpt-4.1-copilot").count() == 4


def test_az_cli_strings_streamed_chunks_and_quirks(ingest):
    ingest("azure_apim_llm_log", NORMAL)
    before = ledger()
    run = ingest("azure_apim_llm_log", AZ_CLI)

    # Eleven records: two repeat the sample, three are chunks of one streamed request (not rows).
    assert (run.rows, run.accepted, run.duplicates, run.rejected) == (8, 6, 2, 0)
    facts = {
        fact.record_key[:36]: fact for fact in UsageFact.objects.filter(run_id=run.pk).select_related("model")
    }
    stream = facts["a1f0c0de-5e55-4a7e-9c11-000000000001"]
    assert (stream.input_uncached_tokens, stream.output_tokens, stream.requests) == (1_800, 420, 1)
    assert stream.record_key.endswith(":0")
    assert stream.cost_nanos == 1_800 * 2_500 + 420 * 10_000
    # DeploymentName is a router; ModelName says which model served.
    routed = facts["a1f0c0de-5e55-4a7e-9c11-000000000002"]
    assert routed.model.name == "gpt-4.1-mini-2025-04-14"
    assert routed.cost_nanos == 900 * 400 + 100 * 1_600
    assert facts["a1f0c0de-5e55-4a7e-9c11-000000000003"].cost_nanos is None  # unknown model: unpriced
    huge = facts["a1f0c0de-5e55-4a7e-9c11-000000000004"]
    assert (huge.input_uncached_tokens, huge.cost_nanos) == (6_000_000_000, 900_000_000_000 + 5 * 600)
    assert facts["a1f0c0de-5e55-4a7e-9c11-000000000005"].cost_nanos == 0
    unicode = UsageFact.objects.get(raw_identity__fields__deployment="gpt-4o-équipe-données")
    assert unicode.raw_identity.fields["api_key"] == "sub-données-team"

    after = ledger()
    assert after["rows"] == before["rows"] + 6
    assert after["requests"] == 18
    assert after["output_tokens"] == before["output_tokens"] + 420 + 100 + 50 + 5 + 0 + 100
    again = ingest("azure_apim_llm_log", AZ_CLI)
    assert (again.accepted, again.duplicates) == (0, 8)
    assert ledger() == after


def test_the_query_api_answer_and_the_portal_csv(ingest):
    ingest("azure_apim_llm_log", NORMAL)
    api = ingest("azure_apim_llm_log", QUERY_API)
    assert (api.rows, api.accepted, api.duplicates, api.rejected) == (2, 1, 1, 0)
    new = UsageFact.objects.get(run_id=api.pk)
    assert (new.ts, new.input_uncached_tokens, new.output_tokens) == (
        dt.datetime(2026, 8, 5, 10, 0, 0, 250_000, tzinfo=dt.UTC),
        2_000,
        300,
    )

    portal = ingest("azure_apim_llm_log", PORTAL)
    assert (portal.rows, portal.accepted, portal.rejected) == (2, 2, 0)
    times = sorted(UsageFact.objects.filter(run_id=portal.pk).values_list("ts", flat=True))
    assert times == [
        dt.datetime(2026, 8, 5, 11, 0, 0, 123_000, tzinfo=dt.UTC),
        dt.datetime(2026, 8, 5, 13, 30, tzinfo=dt.UTC),
    ]
    assert ledger()["requests"] == 15


def test_bad_records_are_reported_by_line_and_field_and_good_ones_kept(ingest):
    run = ingest("azure_apim_llm_log", BAD_ROWS)

    # Eleven lines: one is a chunk record (no row), eight are bad, two are good.
    assert (run.rows, run.accepted, run.rejected) == (10, 2, 8)
    rejected = [(row.line, row.field) for row in RejectedRow.objects.order_by("line")]
    assert rejected == [
        (2, "CorrelationId"),
        (3, "TimeGenerated"),
        (4, "PromptTokens"),
        (5, "CompletionTokens"),
        (6, "SequenceNumber"),
        (7, "ModelName"),
        (8, "Type"),
        (10, "(line)"),
    ]
    assert "only record 0 may" in RejectedRow.objects.get(line=6).reason
    assert json.loads(RejectedRow.objects.get(line=4).raw)["PromptTokens"] == -3
    assert ledger() == {
        "rows": 2,
        "cost": 2 * (1_000 * 150 + 100 * 600),
        "input_uncached_tokens": 2_000,
        "output_tokens": 200,
        "requests": 2,
    }
