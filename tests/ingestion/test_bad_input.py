"""Bad rows are reported with file, line, field and reason; good rows are kept (TESTPLAN C1, C2, C8)."""

import json
import random

from django.core.management import call_command
from django.db.models import Count, Sum

from apps.ingestion.models import RejectedRow
from apps.usage.models import UsageFact
from tests.conftest import litellm_record, write_jsonl

LINES = 10_000


def _bad_lines() -> list[tuple[bytes, str, str]]:
    """(line, field, reason fragment) for each kind of bad line in TESTPLAN C1."""
    good = litellm_record("bad-0")

    def variant(**changes) -> bytes:
        record = json.loads(json.dumps(good))
        record.update(changes)
        return json.dumps(record).encode()

    missing_id = json.loads(json.dumps(good))
    del missing_id["request_id"]
    return [
        (b'{"request_id": "broken", "prompt_tokens": 1', "(line)", "invalid JSON"),
        (json.dumps(missing_id).encode(), "request_id", "is missing"),
        (variant(request_id="neg", prompt_tokens=-5), "prompt_tokens", "negative"),
        (variant(request_id="cost", spend="twelve dollars"), "spend", "expected an amount"),
        (variant(request_id="when", startTime="last tuesday"), "startTime", "not a timestamp"),
        (variant(request_id="enum", status="maybe"), "status", "unknown status"),
        (b'{"request_id": "utf8-\xff\xfe", "prompt_tokens": 1}', "(line)", "invalid JSON"),
        (variant(request_id="huge", completion_tokens=2**63), "completion_tokens", "does not fit in 64 bits"),
        (
            variant(
                request_id="reason",
                completion_tokens=5,
                metadata={
                    **good["metadata"],
                    "usage_object": {
                        **good["metadata"]["usage_object"],
                        "completion_tokens_details": {"reasoning_tokens": 50},
                    },
                },
            ),
            "completion_tokens",
            "less than its reasoning tokens",
        ),
        (variant(request_id="cache", prompt_tokens=100), "prompt_tokens", "less than its cache reads"),
    ]


def test_bad_lines_are_reported_and_good_lines_kept(ingest, tmp_path, capsys):
    bad = _bad_lines()
    positions = sorted(random.Random(7).sample(range(1, LINES + 1), len(bad)))
    bad_at = dict(zip(positions, bad, strict=True))
    lines = [bad_at[n][0] if n in bad_at else litellm_record(f"req-{n}") for n in range(1, LINES + 1)]
    path = write_jsonl(tmp_path / "spend.jsonl", lines)

    call_command("ingest", "--format", "litellm_spend_logs", str(path))
    summary = json.loads(capsys.readouterr().out)

    assert (summary["rows"], summary["accepted"], summary["rejected"], summary["duplicates"]) == (
        10_000,
        9_990,
        10,
        0,
    )
    rejected = list(RejectedRow.objects.order_by("line"))
    assert [row.line for row in rejected] == positions
    for row, position in zip(rejected, positions, strict=True):
        _, field, reason = bad_at[position]
        assert row.file == "spend.jsonl"
        assert row.field == field, (position, row.reason)
        assert reason in row.reason
    assert rejected[0].raw  # kept for re-submission
    assert UsageFact.objects.count() == 9_990


def test_resubmitting_corrected_rows_gives_the_all_good_totals(ingest, tmp_path):
    good = [litellm_record(f"req-{n}") for n in range(1, 201)]
    broken = list(good)
    broken[49] = json.dumps({**good[49], "prompt_tokens": -1}).encode()
    broken[149] = json.dumps({**good[149], "startTime": "yesterday"}).encode()
    first = ingest("litellm_spend_logs", write_jsonl(tmp_path / "broken.jsonl", broken))
    assert (first.accepted, first.rejected) == (198, 2)

    corrected = write_jsonl(tmp_path / "corrected.jsonl", [good[49], good[149]])
    second = ingest("litellm_spend_logs", corrected)
    assert (second.accepted, second.rejected, second.duplicates) == (2, 0, 0)

    totals = UsageFact.objects.aggregate(
        rows=Count("id"), cost=Sum("cost_nanos"), tokens=Sum("output_tokens")
    )
    assert totals == {"rows": 200, "cost": 200 * 500_000, "tokens": 200 * 100}


def test_huge_token_counts_and_odd_money_are_stored_exactly(ingest, tmp_path):
    usage = litellm_record("x")["metadata"]["usage_object"]
    records = [
        litellm_record(
            "big-31",
            prompt_tokens=2**31 + 5,
            completion_tokens=0,
            spend="0E-6176",
            metadata={"usage_object": {**usage, "prompt_tokens_details": {"cached_tokens": 0}}},
        ),
        litellm_record(
            "big-34",
            prompt_tokens=2**34 + 7,
            completion_tokens=2**33,
            spend=1.5e-2,
            metadata={"usage_object": {**usage, "prompt_tokens_details": {"cached_tokens": 2**32}}},
        ),
        litellm_record("long-decimal", spend="0.012345678901234567890123456789012345678"),
    ]
    run = ingest("litellm_spend_logs", write_jsonl(tmp_path / "big.jsonl", records))
    assert (run.accepted, run.rejected) == (3, 0)

    big31 = UsageFact.objects.get(record_key="big-31")
    big34 = UsageFact.objects.get(record_key="big-34")
    assert big31.input_uncached_tokens == 2**31 + 5
    assert (big34.input_uncached_tokens, big34.cache_read_tokens, big34.output_tokens) == (
        2**34 + 7 - 2**32,
        2**32,
        2**33,
    )
    assert big31.reported_cost_nanos == 0
    assert big34.reported_cost_nanos == 15_000_000
    # Nano-dollars are the ledger's unit: 39 decimals round half-even to the nano.
    assert UsageFact.objects.get(record_key="long-decimal").reported_cost_nanos == 12_345_679
    # gpt-4.1-mini at $0.40 / $0.10 / $1.60 per MTok = 400 / 100 / 1,600 nano-dollars a token.
    assert big31.cost_nanos == (2**31 + 5) * 400
    assert big34.cost_nanos == (2**34 + 7 - 2**32) * 400 + 2**32 * 100 + 2**33 * 1_600
    assert (
        UsageFact.objects.aggregate(t=Sum("input_uncached_tokens"))["t"]
        == 2**31 + 5 + 2**34 + 7 - 2**32 + 800
    )
