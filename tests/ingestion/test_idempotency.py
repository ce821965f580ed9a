"""Re-ingesting changes no total; a grown bucket replaces its old version in any order (TESTPLAN A1, A2, A6)."""

import copy
import json
from itertools import permutations

from django.core.management import call_command
from django.db.models import Count, Sum

from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import FIXTURES, litellm_record, write_jsonl

TOTAL_FIELDS = ("input_uncached_tokens", "cache_read_tokens", "output_tokens", "requests", "cost_nanos")


def ledger_totals() -> dict:
    facts = UsageFact.objects.aggregate(rows=Count("id"), **{f: Sum(f) for f in TOTAL_FIELDS})
    rollups = DailyRollup.objects.aggregate(rows=Sum("fact_rows"), **{f: Sum(f) for f in TOTAL_FIELDS})
    assert facts == rollups, "rollups must add up to the facts"
    return facts


def cli_ingest(capsys, format: str, *paths) -> dict:
    call_command("ingest", "--format", format, *map(str, paths))
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_overlapping_exports_count_every_request_once(ingest, tmp_path, capsys):
    # X holds requests 0-59, Y holds 40-99: 20 overlap, 100 distinct.
    x = write_jsonl(tmp_path / "x.jsonl", [litellm_record(f"req-{i}") for i in range(60)])
    y = write_jsonl(tmp_path / "y.jsonl", [litellm_record(f"req-{i}") for i in range(40, 100)])

    first = cli_ingest(capsys, "litellm_spend_logs", x)
    second = cli_ingest(capsys, "litellm_spend_logs", y)
    after_y = ledger_totals()
    third = cli_ingest(capsys, "litellm_spend_logs", y)
    fourth = cli_ingest(capsys, "litellm_spend_logs", y)

    assert (first["accepted"], first["duplicates"]) == (60, 0)
    assert (second["accepted"], second["duplicates"], second["replaced"]) == (40, 20, 0)
    for again in (third, fourth):
        assert (again["rows"], again["accepted"], again["duplicates"], again["replaced"]) == (60, 0, 60, 0)
    # 100 requests x (800 uncached + 200 cached + 100 output); gpt-4.1-mini at $0.40/$0.10/$1.60 per MTok.
    assert after_y == {
        "rows": 100,
        "input_uncached_tokens": 80_000,
        "cache_read_tokens": 20_000,
        "output_tokens": 10_000,
        "requests": 100,
        "cost_nanos": 100 * (800 * 400 + 200 * 100 + 100 * 1_600),
    }
    assert ledger_totals() == after_y


def test_ingesting_files_in_any_order_gives_the_same_ledger(ingest, tmp_path):
    files = [
        write_jsonl(
            tmp_path / f"part{n}.jsonl", [litellm_record(f"req-{i}") for i in range(start, start + 30)]
        )
        for n, start in enumerate((0, 20, 10))
    ]
    results = []
    for order in permutations(files):
        UsageFact.objects.all().delete()
        DailyRollup.objects.all().delete()
        for path in order:
            ingest("litellm_spend_logs", path)
        results.append(ledger_totals())
    assert all(result == results[0] for result in results)
    assert results[0]["rows"] == 50


def _page(bucket_start: int, results: list[dict]) -> dict:
    return {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": bucket_start,
                "end_time": bucket_start + 86400,
                "results": results,
            }
        ],
        "has_more": False,
        "next_page": None,
    }


def _result(requests: int, input_tokens: int, output_tokens: int) -> dict:
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_cached_tokens": 0,
        "num_model_requests": requests,
        "project_id": "proj_A",
        "user_id": None,
        "api_key_id": None,
        "model": "gpt-4.1-2025-04-14",
        "batch": False,
    }


DAY_1, DAY_2 = 1785715200, 1785801600  # 2026-08-03 and 2026-08-04, UTC


def test_a_grown_bucket_replaces_its_earlier_version_in_every_order(ingest, tmp_path):
    early = tmp_path / "early.json"
    early.write_text(json.dumps(_page(DAY_1, [_result(10, 10_000, 1_000)])))
    # The re-export: day 1 is complete now (grew), and day 2 appeared.
    grown = _page(DAY_1, [_result(25, 30_000, 2_500)])
    grown["data"].append(copy.deepcopy(_page(DAY_2, [_result(5, 4_000, 400)])["data"][0]))
    late = tmp_path / "late.json"
    late.write_text(json.dumps(grown))

    for order in ((early, late), (late, early)):
        UsageFact.objects.all().delete()
        DailyRollup.objects.all().delete()
        runs = [ingest("openai_usage", path) for path in order]
        day_1 = UsageFact.objects.get(ts__date="2026-08-03")
        assert (day_1.requests, day_1.input_uncached_tokens, day_1.output_tokens) == (25, 30_000, 2_500)
        assert UsageFact.objects.count() == 2
        assert ledger_totals()["requests"] == 30
        if order[0] is early:
            assert (runs[1].accepted, runs[1].replaced, runs[1].duplicates) == (1, 1, 0)
        else:
            # The older, smaller version arriving late does not roll the bucket back.
            assert (runs[1].accepted, runs[1].replaced, runs[1].duplicates) == (0, 0, 1)


def test_a_re_pulled_identical_bucket_is_a_duplicate_not_a_replacement(ingest):
    pages = sorted((FIXTURES / "openai_admin_usage").glob("completions_usage_normal_page*.json"))
    ingest("openai_usage", *pages)
    again = ingest("openai_usage", *pages)
    assert (again.rows, again.accepted, again.duplicates, again.replaced) == (21, 0, 21, 0)


def test_a_model_no_price_list_knows_is_kept_unpriced_never_free(ingest, tmp_path, capsys):
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            litellm_record("known-1"),
            litellm_record("mystery-1", model="acme-llm-2027", custom_llm_provider="acme"),
        ],
    )
    run = ingest("litellm_spend_logs", path)

    assert run.accepted == 2
    mystery = UsageFact.objects.get(record_key="mystery-1")
    assert mystery.cost_nanos is None and mystery.price_ref_id is None
    assert mystery.reported_cost_nanos == 520_000  # kept as the gateway reported it
    call_command("spend", "--by", "model", "--start", "2026-08-03", "--end", "2026-08-03")
    by_model = {group["key"]: group for group in json.loads(capsys.readouterr().out)}
    assert by_model["acme/acme-llm-2027"]["unpriced_rows"] == 1
    assert by_model["acme/acme-llm-2027"]["cost_usd"] == "0.000000000"
    assert by_model["openai/gpt-4.1-mini-2025-04-14"]["unpriced_rows"] == 0
    # 800 x $0.40 + 200 x $0.10 + 100 x $1.60 per MTok = $0.000500 (the gateway reported $0.00052)
    assert by_model["openai/gpt-4.1-mini-2025-04-14"]["cost_usd"] == "0.000500000"
