"""Bedrock invocation logs: every token kind, request and dollar per model to the nano-dollar; the double
delivery to CloudWatch and S3 (gzip) counts each request once; quirks and bad lines (FORMATS.md §3)."""

import datetime as dt
import gzip
import json
from collections import defaultdict
from decimal import Decimal

from django.db.models import Count, Sum
from genai_prices import Usage, calc_price

from apps.ingestion.models import RejectedRow
from apps.usage.models import UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "bedrock_invocation_logs"
NORMAL = DIR / "model_invocation_logs_normal.jsonl"
S3_OBJECT = DIR / "s3_us-east-1_2026-08-04T15.json.gz"
CLOUDWATCH = DIR / "cloudwatch_filter_log_events.json"
QUIRKS = DIR / "model_invocation_logs_quirks.jsonl"
BAD_ROWS = DIR / "model_invocation_logs_bad_rows.jsonl"
COLUMNS = ("input_uncached_tokens", "cache_read_tokens", "cache_write_5m_tokens", "output_tokens", "requests")


def expected_from_log(records: list[dict]) -> dict[str, dict]:
    """Per model, from plain JSON records: tokens by kind, requests and list price via genai-prices."""
    seen: dict[str, dict] = {}
    for record in records:
        seen.setdefault(record["requestId"], record)  # the first copy of a request stands
    totals: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
    for record in seen.values():
        given = record["input"]
        uncached = int(given.get("inputTokenCount", 0))
        read = int(given.get("cacheReadInputTokenCount", 0))
        write = int(given.get("cacheWriteInputTokenCount", 0))
        output = int(record.get("output", {}).get("outputTokenCount", 0))
        price = calc_price(
            Usage(
                input_tokens=uncached + read + write,
                cache_read_tokens=read,
                cache_write_tokens=write,
                output_tokens=output,
            ),
            record["modelId"],
            provider_id="aws",
            genai_request_timestamp=dt.datetime.fromisoformat(record["timestamp"]),
        ).total_price
        model = totals[record["modelId"]]
        for column, value in zip(COLUMNS, (uncached, read, write, output, 1), strict=True):
            model[column] += value
        model["cost"] += price
    return {name: dict(values) for name, values in totals.items()}


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stored_by_model() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        cost=Sum("cost_nanos"), **{column: Sum(column) for column in COLUMNS}
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
        assert {column: stored[model][column] for column in COLUMNS} == {
            column: want[column] for column in COLUMNS
        }, model
        assert Decimal(stored[model]["cost"]) / 10**9 == want["cost"], model


def test_the_sample_log_gives_exact_totals_per_model(ingest):
    run = ingest("bedrock_invocations", NORMAL)

    assert run.summary() == {
        "run": run.pk,
        "rows": 18,
        "accepted": 18,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 0,
    }
    assert_ledger_matches(expected_from_log(read_jsonl(NORMAL)))
    # By hand: six Claude 3 Haiku calls, 3,830 input and 157 output tokens at $0.25 / $1.25 per MTok.
    haiku = stored_by_model()["anthropic.claude-3-haiku-20240307-v1:0"]
    assert (haiku["input_uncached_tokens"], haiku["output_tokens"], haiku["requests"]) == (3_830, 157, 6)
    assert haiku["cost"] == 3_830 * 250 + 157 * 1_250
    # Cache reads are not inside inputTokenCount: eight Sonnet 4 calls read 129,024 cached tokens.
    sonnet = stored_by_model()["us.anthropic.claude-sonnet-4-20250514-v1:0"]
    assert (sonnet["cache_read_tokens"], sonnet["cache_write_5m_tokens"]) == (129_024, 12_288)
    assert ledger()["rows"] == 18


def test_identity_keeps_the_caller_arn_and_the_request_metadata(ingest):
    ingest("bedrock_invocations", NORMAL)

    platform = UsageFact.objects.filter(raw_identity__fields__team="platform")
    assert platform.count() == 8
    assert platform.filter(raw_identity__fields__user="alice.nguyen").count() == 8
    assert platform.filter(raw_identity__fields__email="alice.nguyen@northwind.example").count() == 8
    ci = UsageFact.objects.filter(raw_identity__fields__arn="arn:aws:iam::111122223333:user/ci-pipeline")
    assert ci.count() == 2
    assert ci.filter(raw_identity__fields__app="invoice-extract").count() == 2


def test_double_delivery_to_s3_and_cloudwatch_counts_each_request_once(ingest):
    ingest("bedrock_invocations", NORMAL)
    before = ledger()

    s3 = ingest("bedrock_invocations", S3_OBJECT)  # gzip, decompressed while read
    assert (s3.rows, s3.accepted, s3.duplicates, s3.replaced, s3.rejected) == (5, 2, 3, 0, 0)
    cloudwatch = ingest("bedrock_invocations", CLOUDWATCH)
    assert (cloudwatch.rows, cloudwatch.accepted, cloudwatch.duplicates, cloudwatch.rejected) == (5, 1, 4, 0)

    everything = read_jsonl(NORMAL)
    with gzip.open(S3_OBJECT, "rt") as handle:
        everything += [json.loads(line) for line in handle]
    everything += [json.loads(event["message"]) for event in json.loads(CLOUDWATCH.read_text())["events"]]
    assert_ledger_matches(expected_from_log(everything))
    after = ledger()
    assert after["rows"] == before["rows"] + 3 == 21
    assert after["requests"] == 21

    for path in (NORMAL, S3_OBJECT, CLOUDWATCH):
        again = ingest("bedrock_invocations", path)
        assert again.accepted == 0 and again.duplicates == again.rows
    assert ledger() == after


def test_a_gzip_object_is_recognised_by_its_magic_bytes_whatever_its_name(ingest, tmp_path):
    renamed = tmp_path / "object-without-suffix"
    renamed.write_bytes(S3_OBJECT.read_bytes())
    run = ingest("bedrock_invocations", renamed)
    assert (run.rows, run.accepted, run.rejected) == (5, 5, 0)


def test_a_damaged_gzip_object_keeps_the_records_before_the_damage(ingest, tmp_path):
    records = [
        dict(json.loads(NORMAL.read_text().splitlines()[0]), requestId=f"req-{n:05d}-{'x' * 40}")
        for n in range(400)
    ]
    whole = gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode(), mtime=0)
    damaged = tmp_path / "cut.json.gz"
    damaged.write_bytes(whole[: len(whole) * 3 // 4])

    run = ingest("bedrock_invocations", damaged)
    error = RejectedRow.objects.get()
    assert run.status == "completed"
    assert (error.file, error.field) == ("cut.json.gz", "(file)")
    assert "Compressed file ended before the end-of-stream marker" in error.reason
    assert 0 < run.accepted < 400
    assert error.line == run.accepted + 1  # every record before the damage is kept
    assert (run.rows, run.rejected) == (run.accepted + 1, 1)


def test_a_file_named_gz_that_is_not_gzip_is_reported_not_crashed_on(ingest, tmp_path):
    fake = tmp_path / "plain.json.gz"
    fake.write_bytes(NORMAL.read_bytes())
    run = ingest("bedrock_invocations", fake)
    error = RejectedRow.objects.get()
    assert (run.status, run.accepted, error.line, error.field) == ("completed", 0, 1, "(file)")
    assert "Not a gzipped file" in error.reason

    truncated = ingest("bedrock_invocations", DIR / "s3_truncated.json.gz")
    assert (truncated.status, truncated.accepted, truncated.rejected) == ("completed", 0, 1)


def test_quirks_are_read_as_the_format_says(ingest):
    run = ingest("bedrock_invocations", QUIRKS)

    # Ten lines; the same request twice (double delivery), so nine rows.
    assert (run.rows, run.accepted, run.duplicates, run.rejected) == (10, 9, 1, 0)
    facts = {fact.record_key[-2:]: fact for fact in UsageFact.objects.select_related("model", "raw_identity")}

    # RFC 3339 with milliseconds and an offset; global inference profile priced as Sonnet 4.5.
    sonnet45 = facts["01"]
    assert sonnet45.ts == dt.datetime(2026, 8, 5, 9, 15, 0, 250_000, tzinfo=dt.UTC)
    assert sonnet45.cost_nanos == 2_048 * 3_000 + 1_024 * 3_750 + 300 * 15_000
    assert sonnet45.raw_identity.fields["tag"] == "release-notes"
    assert sonnet45.raw_identity.fields["email"] == "zoë.müller@northwind.example"
    # An embedding: no output at all, no identity but the account.
    embedding = facts["02"]
    assert (embedding.input_uncached_tokens, embedding.output_tokens, embedding.cost_nanos) == (
        512,
        0,
        10_240,
    )
    assert embedding.raw_identity.fields == {"account": "111122223333"}
    # A throttled call: a failed request, no tokens, no cost.
    throttled = facts["03"]
    assert (throttled.failed, throttled.requests, throttled.output_tokens, throttled.cost_nanos) == (
        True,
        1,
        0,
        0,
    )
    # An application inference profile ARN cannot be resolved to a model: kept, unpriced (NULL, not 0).
    assert facts["04"].model.name.endswith("application-inference-profile/k2x9q7w1p4ab")
    assert facts["04"].cost_nanos is None
    # A system inference profile ARN prices like the model it names.
    assert facts["05"].cost_nanos == 1_000 * 3_000 + 100 * 15_000
    # Counts past 2**32: Nova Lite at $0.06 input, $0.015 cache read, $0.24 output per MTok.
    huge = facts["06"]
    assert (huge.input_uncached_tokens, huge.cache_read_tokens) == (5_000_000_000, 4_294_967_296)
    assert huge.cost_nanos == 300_000_000_000 + 64_424_509_440 + 2_400
    assert (facts["07"].input_uncached_tokens, facts["07"].cost_nanos) == (0, 0)
    # Token counts written as strings.
    assert (facts["08"].input_uncached_tokens, facts["08"].cost_nanos) == (1_200, 400_000)
    assert facts["09"].raw_identity.fields["team"] == "données"
    assert facts["09"].cost_nanos == 125_000

    again = ingest("bedrock_invocations", QUIRKS)
    assert (again.accepted, again.duplicates) == (0, 10)


def test_bad_lines_are_reported_by_line_and_field_and_good_lines_kept(ingest):
    run = ingest("bedrock_invocations", BAD_ROWS)

    assert (run.rows, run.accepted, run.rejected, run.duplicates) == (13, 3, 10, 0)
    rejected = [(row.line, row.field) for row in RejectedRow.objects.order_by("line")]
    assert rejected == [
        (2, "(line)"),
        (3, "requestId"),
        (4, "input.inputTokenCount"),
        (5, "output.outputTokenCount"),
        (6, "timestamp"),
        (8, "modelId"),
        (9, "input.inputTokenCount"),
        (10, "schemaType"),
        (11, "requestMetadata"),
        (14, "input"),
    ]
    assert set(RejectedRow.objects.values_list("file", flat=True)) == {BAD_ROWS.name}
    negative = RejectedRow.objects.get(line=4)
    assert "negative" in negative.reason
    assert json.loads(negative.raw)["input"]["inputTokenCount"] == -5  # kept to fix and re-submit
    assert "does not fit in 64 bits" in RejectedRow.objects.get(line=9).reason
    assert ledger()["input_uncached_tokens"] == 300
