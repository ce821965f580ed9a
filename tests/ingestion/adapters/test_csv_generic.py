"""The generic CSV (docs/formats/csv.md): canonical columns or their aliases; input_tokens exclude the
cache; a date-only timestamp is a day's total; no request_id means the row's content is its key.

Expected figures come from the files (csv module) and genai-prices' calc_price, not from the adapter.
"""

import csv
import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db.models import Sum
from genai_prices import Usage, calc_price

from apps.ingestion.models import RejectedRow, RunStatus
from apps.usage.models import Grain, UsageFact
from tests.conftest import FIXTURES

DIR = FIXTURES / "csv"
REQUESTS = DIR / "usage_requests.csv"
REEXPORT = DIR / "usage_requests_reexport.csv"
DAILY = DIR / "usage_daily_no_ids.csv"
BAD_ROWS = DIR / "usage_bad_rows.csv"
UNKNOWN_COLUMNS = DIR / "usage_unknown_columns.csv"

KINDS = ("input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "reasoning", "requests", "cost")


def stored() -> dict[str, dict]:
    rows = UsageFact.objects.values("model__name").annotate(
        input=Sum("input_uncached_tokens"),
        cache_read=Sum("cache_read_tokens"),
        cache_write_5m=Sum("cache_write_5m_tokens"),
        cache_write_1h=Sum("cache_write_1h_tokens"),
        output=Sum("output_tokens"),
        reasoning=Sum("reasoning_tokens"),
        requests=Sum("requests"),
        cost=Sum("cost_nanos"),
    )
    return {row.pop("model__name"): row for row in rows}


def expected_requests() -> dict[str, dict]:
    """usage_requests.csv per model, read with the csv module and priced with calc_price."""
    totals: dict[str, dict] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    with REQUESTS.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            counts = {
                kind: int(row[f"{kind}_tokens"]) for kind in ("input", "cache_read", "output", "reasoning")
            }
            counts["cache_write_5m"] = int(row["cache_write_tokens"])
            counts["cache_write_1h"] = int(row["cache_write_1h_tokens"])
            stamp = row["timestamp"]
            when = (
                dt.datetime.fromtimestamp(int(stamp), tz=dt.UTC)
                if stamp.isdigit()
                else dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC)
                if len(stamp) == 10
                else dt.datetime.fromisoformat(stamp)
            )
            model = totals[row["model"]]
            for kind, value in counts.items():
                model[kind] += value
            model["requests"] += int(row["requests"])
            if not row["provider"]:
                model["cost"] = None  # acme-large-2: no price list knows it
                continue
            writes = counts["cache_write_5m"] + counts["cache_write_1h"]
            price = calc_price(
                Usage(
                    input_tokens=counts["input"] + counts["cache_read"] + writes,
                    cache_read_tokens=counts["cache_read"],
                    cache_write_tokens=writes,
                    cache_write_1h_tokens=counts["cache_write_1h"],
                    output_tokens=counts["output"],
                ),
                row["model"],
                provider_id=row["provider"],
                genai_request_timestamp=when,
            ).total_price
            model["cost"] += int((price * 10**9).to_integral_value())
    return dict(totals)


def test_request_rows_match_the_independent_checker(ingest):
    run = ingest("csv", REQUESTS)

    assert (run.rows, run.accepted, run.duplicates, run.rejected) == (8, 8, 0, 0)
    assert stored() == expected_requests()

    def fact(key: str) -> UsageFact:
        return UsageFact.objects.get(record_key=key)

    # $0.40 input, $0.10 cache read, $1.60 output per MTok; the file says the same.
    assert (fact("req-1").cost_nanos, fact("req-1").reported_cost_nanos) == (580_000, 580_000)
    sonnet = fact("req-2")  # cache writes at their own rates: 5 minutes $3.75, 1 hour $6 per MTok
    assert sonnet.cost_nanos == 2_000 * 3_000 + 10_000 * 300 + 1_000 * 3_750 + 500 * 6_000 + 300 * 15_000
    assert sonnet.ts == dt.datetime(2026, 8, 3, 8, tzinfo=dt.UTC)  # 10:00 at +02:00
    assert fact("req-3").ts == dt.datetime(2026, 8, 3, 9, 5, tzinfo=dt.UTC)  # unix seconds
    day = fact("day-openai-0804")
    assert (day.grain, day.day, day.requests, day.cost_nanos) == (
        Grain.DAY,
        dt.date(2026, 8, 4),
        42,
        385_000_000,
    )
    assert (fact("req-5").cost_nanos, fact("req-5").reported_cost_nanos) == (None, 2_000_000)
    assert fact("req-6").cost_nanos == 0
    big = fact("req-7")
    assert (big.input_uncached_tokens, big.cache_read_tokens, big.output_tokens) == (
        6_000_000_000,
        4_294_967_296,
        8_589_934_592,
    )
    assert big.cost_nanos == 6_000_000_000 * 400 + 4_294_967_296 * 100 + 8_589_934_592 * 1_600
    assert big.reported_cost_nanos == 1_500_000_000_000  # "1.5e3"
    assert fact("req-8").raw_identity.fields == {
        "user": "zoë@acme.example",
        "gateway_team": "Platform, EMEA",
        "tag": "résumé-parsing",
    }
    assert fact("req-1").raw_identity.fields == {
        "user": "alice@acme.example",
        "gateway_team": "platform",
        "tag": "triage",
        "api_key": "key-alice",
    }


def test_a_reexport_in_another_column_order_with_aliases_adds_only_new_rows(ingest):
    ingest("csv", REQUESTS)
    before = stored()

    reexport = ingest("csv", REEXPORT)
    assert (reexport.rows, reexport.accepted, reexport.duplicates, reexport.replaced) == (7, 2, 5, 0)
    after = stored()
    assert after["gpt-4.1-mini-2025-04-14"]["requests"] == before["gpt-4.1-mini-2025-04-14"]["requests"] + 1
    assert after["claude-3-5-haiku-20241022"] == {
        "input": 4_000,
        "cache_read": 0,
        "cache_write_5m": 0,
        "cache_write_1h": 0,
        "output": 400,
        "reasoning": 0,
        "requests": 1,
        "cost": 4_000 * 800 + 400 * 4_000,  # $0.80 in, $4 out per MTok
    }
    assert {model: row for model, row in after.items() if model != "claude-3-5-haiku-20241022"} == {
        **before,
        "gpt-4.1-mini-2025-04-14": {
            **before["gpt-4.1-mini-2025-04-14"],
            "input": before["gpt-4.1-mini-2025-04-14"]["input"] + 3_000,
            "output": before["gpt-4.1-mini-2025-04-14"]["output"] + 300,
            "requests": before["gpt-4.1-mini-2025-04-14"]["requests"] + 1,
            "cost": before["gpt-4.1-mini-2025-04-14"]["cost"] + 3_000 * 400 + 300 * 1_600,
        },
    }

    again = ingest("csv", REQUESTS, REEXPORT)
    assert (again.accepted, again.duplicates) == (0, 15)
    assert stored() == after


def test_rows_without_ids_are_keyed_by_content_so_reingesting_adds_nothing(ingest):
    run = ingest("csv", DAILY)

    # BOM, CRLF, ";" delimiter, display-case aliases, a quoted newline, a blank line, a repeated row.
    assert (run.rows, run.accepted, run.duplicates, run.rejected) == (5, 4, 1, 0)
    days = UsageFact.objects.filter(grain=Grain.DAY)
    assert days.count() == 3
    assert days.aggregate(
        cost=Sum("cost_nanos"), reported=Sum("reported_cost_nanos"), requests=Sum("requests")
    ) == {
        # 400k x $0.40 + 100k x $0.10 + 50k x $1.60; 250k x $0.80 + 20k x $4; 300k x $0.40 + 40k x $1.60
        "cost": 250_000_000 + 280_000_000 + 184_000_000,
        "reported": 250_000_000 + 280_000_000 + 184_000_000,
        "requests": 290,
    }
    review = UsageFact.objects.get(model__name="claude-3-5-haiku-20241022")
    assert review.raw_identity.fields["tag"] == "code\r\nreview"
    single = UsageFact.objects.get(grain=Grain.REQUEST)
    assert (single.requests, single.cost_nanos) == (1, 560_000)  # no count given: one request

    again = ingest("csv", DAILY)
    assert (again.accepted, again.duplicates) == (0, 5)
    assert UsageFact.objects.count() == 4


def test_bad_rows_are_reported_with_line_and_field_and_good_rows_kept(ingest):
    run = ingest("csv", BAD_ROWS)

    assert (run.rows, run.accepted, run.rejected) == (14, 3, 11)
    assert sorted(UsageFact.objects.values_list("record_key", flat=True)) == [
        "good-1",
        "good-2\nwith a newline in its id",
        "good-3",
    ]
    assert UsageFact.objects.get(record_key="good-3").reasoning_tokens == 600
    failed = UsageFact.objects.get(record_key__startswith="good-2")
    assert (failed.failed, failed.cost_nanos) == (True, 0)
    rejected = [(r.file, r.line, r.field) for r in RejectedRow.objects.order_by("line")]
    assert rejected == [
        ("usage_bad_rows.csv", 3, "input_tokens"),
        ("usage_bad_rows.csv", 4, "input_tokens"),
        ("usage_bad_rows.csv", 5, "timestamp"),
        ("usage_bad_rows.csv", 6, "model"),
        ("usage_bad_rows.csv", 7, "reasoning_tokens"),
        ("usage_bad_rows.csv", 8, "failed"),
        # good-2 spans lines 9-10 (a quoted newline)
        ("usage_bad_rows.csv", 11, "cost_usd"),
        ("usage_bad_rows.csv", 12, "(line)"),
        ("usage_bad_rows.csv", 13, "(line)"),
        ("usage_bad_rows.csv", 14, "timestamp"),
        ("usage_bad_rows.csv", 15, "input_tokens"),
    ]
    reasons = dict(RejectedRow.objects.values_list("line", "reason"))
    assert reasons[3] == "token count is negative (-5)"
    assert reasons[7] == "500 is more than output_tokens (100), which include it"
    assert reasons[12] == "has 11 values but the header has 10 columns"
    assert reasons[13] == "is not valid UTF-8"
    assert reasons[15] == "token count 99999999999999999999 does not fit in 64 bits"
    raw = RejectedRow.objects.get(line=11).raw
    assert raw == "2026-08-05T09:08:00Z,openai,gpt-4.1-mini-2025-04-14,1000,100,0,ten dollars,false,bad-cost,"
    assert RejectedRow.objects.get(line=13).raw.endswith(",caf\ufffd@acme.example")


def test_a_header_with_unknown_columns_rejects_the_whole_file(ingest):
    run = ingest("csv", UNKNOWN_COLUMNS)

    assert run.status == RunStatus.FAILED
    # prompt_tokens is not an alias of input_tokens: it usually includes cached tokens.
    assert (
        "usage_unknown_columns.csv: line 1 (header): unknown columns 'prompt_tokens', 'Colour'" in run.error
    )
    assert UsageFact.objects.count() == 0


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("timestamp,model,cost,cost_usd", "'cost' and 'cost_usd' both mean cost_usd"),
        ("timestamp,input_tokens", "missing required columns model"),
        ("", "missing required columns timestamp, model"),
    ],
)
def test_other_header_problems_are_named(ingest, tmp_path, header, message):
    path = tmp_path / "usage.csv"
    path.write_text(header + "\n2026-08-05T09:00:00Z,gpt-4.1-mini,1,1\n" if header else "")

    run = ingest("csv", path)

    assert run.status == RunStatus.FAILED
    assert message in run.error


def test_reported_cost_is_read_exactly(ingest, tmp_path):
    path = tmp_path / "money.csv"
    path.write_text(
        "timestamp,model,cost_usd,request_id\n"
        "2026-08-05T09:00:00Z,gpt-4.1-mini,0.012345678901234567890123456789012345678,a\n"
        "2026-08-05T09:00:01Z,gpt-4.1-mini,0E-6176,b\n"
        "2026-08-05T09:00:02Z,gpt-4.1-mini,1.5e-2,c\n"
    )

    ingest("csv", path)

    reported = dict(UsageFact.objects.values_list("record_key", "reported_cost_nanos"))
    assert reported == {"a": 12_345_679, "b": 0, "c": 15_000_000}
    assert sum(reported.values()) == int(Decimal("0.027345679") * 10**9)
