"""Billing vs telemetry (TESTPLAN A7): the bill stands, the gateway logs split it, the rest is unattributed.

Every figure below is worked out by hand from the files the tests write. A gateway request
(tests.conftest.litellm_record: gpt-4.1-mini, 800 uncached + 200 cached input tokens, 100 output) costs
$0.0005 at list price, 500,000 nano-dollars, and LiteLLM reports its spend as $0.00052.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.scoping import organisation_viewer
from apps.catalog.models import AIModel
from apps.usage.models import DailyRollup, UsageFact
from apps.usage.reconcile import PLACEHOLDER_MODEL
from apps.usage.selectors import reconciliation, spend
from apps.usage.services import refresh_rollups
from tests.conftest import litellm_record, write_jsonl

REQUEST = 500_000  # our price of one gateway request, nano-dollars
REPORTED = 520_000  # what LiteLLM says that request cost
DAY = dt.date(2026, 8, 3)
DAY_START = 1785715200  # 2026-08-03T00:00:00Z


# --- files -------------------------------------------------------------------------------------------


def gateway_log(path: Path, requests: list[tuple[str, str, str]], **overrides) -> Path:
    """requests: (request id, gateway user, start time)."""
    return write_jsonl(
        path, [litellm_record(rid, user=user, startTime=start, **overrides) for rid, user, start in requests]
    )


def costs_page(path: Path, days: dict[int, list[tuple[str, str]]]) -> Path:
    """An OpenAI Costs API page: per UTC day start, (line item, dollars) invoice lines."""
    path.write_text(
        json.dumps(
            {
                "object": "page",
                "data": [
                    {
                        "object": "bucket",
                        "start_time": start,
                        "end_time": start + 86_400,
                        "results": [
                            {
                                "object": "organization.costs.result",
                                "amount": {"value": amount, "currency": "usd"},
                                "line_item": line_item,
                                "project_id": "proj_main",
                                "api_key_id": None,
                            }
                            for line_item, amount in lines
                        ],
                    }
                    for start, lines in days.items()
                ],
                "has_more": False,
                "next_page": None,
            }
        )
    )
    return path


def usage_page(path: Path, *, input_tokens: int, cached: int, output_tokens: int, requests: int) -> Path:
    """An OpenAI Usage API page: one gpt-4.1-mini bucket for 2026-08-03."""
    result = {
        "object": "organization.usage.completions.result",
        "input_tokens": input_tokens,
        "input_cached_tokens": cached,
        "output_tokens": output_tokens,
        "num_model_requests": requests,
        "project_id": "proj_main",
        "user_id": None,
        "api_key_id": None,
        "model": "gpt-4.1-mini-2025-04-14",
        "batch": False,
    }
    bucket = {
        "object": "bucket",
        "start_time": DAY_START,
        "end_time": DAY_START + 86_400,
        "results": [result],
    }
    path.write_text(json.dumps({"object": "page", "data": [bucket], "has_more": False, "next_page": None}))
    return path


def five_requests(tmp_path: Path) -> Path:
    """alice 3 requests, bob 2 on 2026-08-03: $0.0025 at our prices, $0.0026 as LiteLLM reports it."""
    when = "2026-08-03T10:00:00+00:00"
    return gateway_log(
        tmp_path / "gateway.jsonl",
        [
            *((f"a{i}", "alice@acme.example", when) for i in range(3)),
            *((f"b{i}", "bob@acme.example", when) for i in range(2)),
        ],
    )


def bill(tmp_path: Path, *lines: tuple[str, str]) -> Path:
    """Invoice lines (line item, dollars) for 2026-08-03."""
    return costs_page(tmp_path / "costs.json", {DAY_START: list(lines)})


# --- reading back ------------------------------------------------------------------------------------


def by_team(acme, start: dt.date = DAY, end: dt.date = DAY) -> dict[str | None, int]:
    return {
        g.key: g.cost_nanos for g in spend(organisation_viewer(acme), group_by="team", start=start, end=end)
    }


def by(acme, group_by: str, start: dt.date = DAY, end: dt.date = DAY) -> dict[str | None, int]:
    groups = spend(organisation_viewer(acme), group_by=group_by, start=start, end=end)
    return {g.key: g.cost_nanos for g in groups}


def adjustments() -> list[tuple]:
    return list(
        DailyRollup.objects.filter(adjustment=True)
        .order_by("day", "provider__slug")
        .values_list(
            "day",
            "provider__slug",
            "model__name",
            "team_id",
            "person_id",
            "task_id",
            "cost_nanos",
            "fact_rows",
            "input_uncached_tokens",
            "output_tokens",
            "requests",
        )
    )


def rollup_snapshot() -> list[tuple]:
    fields = [f.attname for f in DailyRollup._meta.concrete_fields if f.attname != "id"]
    return sorted(DailyRollup.objects.values_list(*fields), key=repr)


# --- billing + telemetry -----------------------------------------------------------------------------


@pytest.mark.parametrize("bill_first", [False, True])
def test_telemetry_under_the_bill_splits_it_and_the_rest_is_unattributed(
    ingest, people, tmp_path, bill_first
):
    loads = [
        ("litellm_spend_logs", five_requests(tmp_path)),
        (
            "openai_costs",
            bill(
                tmp_path,
                ("gpt-4.1-mini-2025-04-14, input", "0.003"),
                ("gpt-4.1-mini-2025-04-14, output", "0.001"),
            ),
        ),
    ]
    for format, path in reversed(loads) if bill_first else loads:
        ingest(format, path)
    acme = people["alice"].organisation

    # Billed $0.004; the gateway explains $0.0025 of it: alice $0.0015, bob $0.0010, $0.0015 unattributed.
    assert by_team(acme) == {"platform": 1_500_000, "payments": 1_000_000, None: 1_500_000}
    assert sum(by_team(acme).values()) == 4_000_000
    assert by(acme, "provider") == {"openai": 4_000_000}
    assert by(acme, "person") == {
        "alice@acme.example": 1_500_000,
        "bob@acme.example": 1_000_000,
        None: 1_500_000,
    }
    assert adjustments() == [(DAY, "openai", PLACEHOLDER_MODEL, None, None, None, 1_500_000, 0, 0, 0, None)]
    # The invoice lines are kept in the ledger, but only the gateway's rows are rolled up.
    assert UsageFact.objects.count() == 7
    assert DailyRollup.objects.aggregate(rows=Sum("fact_rows"), requests=Sum("requests")) == {
        "rows": 5,
        "requests": 5,
    }
    # Σ attributed + unattributed = the bill, to the nano-dollar.
    assert DailyRollup.objects.aggregate(total=Sum("cost_nanos"))["total"] == 4_000_000


def test_telemetry_over_the_bill_gives_a_negative_adjustment_and_the_total_is_the_bill(
    ingest, people, tmp_path
):
    ingest("litellm_spend_logs", five_requests(tmp_path))
    ingest("openai_costs", bill(tmp_path, ("gpt-4.1-mini-2025-04-14, input", "0.002")))
    acme = people["alice"].organisation

    assert by_team(acme) == {"platform": 1_500_000, "payments": 1_000_000, None: -500_000}
    assert sum(by_team(acme).values()) == 2_000_000
    assert adjustments() == [(DAY, "openai", PLACEHOLDER_MODEL, None, None, None, -500_000, 0, 0, 0, None)]


def test_the_spend_command_counts_the_adjustment_as_unattributed(ingest, people, tmp_path, capsys):
    ingest("litellm_spend_logs", five_requests(tmp_path))
    ingest("openai_costs", bill(tmp_path, ("gpt-4.1-mini-2025-04-14, input", "0.004")))

    call_command("spend", "--by", "team", "--start", "2026-08-03", "--end", "2026-08-03")
    groups = json.loads(capsys.readouterr().out)
    assert [(g["key"], g["cost_usd"], g["requests"]) for g in groups] == [
        ("platform", "0.001500000", 3),
        (None, "0.001500000", None),
        ("payments", "0.001000000", 2),
    ]
    call_command("spend", "--by", "model", "--start", "2026-08-03", "--end", "2026-08-03")
    assert {g["key"]: g["cost_usd"] for g in json.loads(capsys.readouterr().out)} == {
        "openai/gpt-4.1-mini-2025-04-14": "0.002500000",
        f"openai/{PLACEHOLDER_MODEL}": "0.001500000",
    }


def test_the_overview_shows_the_bill_as_total_and_the_adjustment_as_unattributed(
    ingest, as_persona, tmp_path
):
    client = as_persona("cio")
    now = timezone.now().replace(microsecond=0)
    midnight = int(dt.datetime.combine(now.date(), dt.time(), tzinfo=dt.UTC).timestamp())
    ingest(
        "litellm_spend_logs",
        gateway_log(tmp_path / "today.jsonl", [("a0", "alice@acme.example", now.isoformat())]),
    )
    ingest(
        "openai_costs", costs_page(tmp_path / "today.json", {midnight: [("gpt-4.1-mini, input", "0.0012")]})
    )

    response = client.get("/")
    assert response.context["total_usd"] == "0.001200000"
    assert response.context["unattributed_usd"] == "0.000700000"
    assert {g.key: g.cost_nanos for g in response.context["teams"]} == {"platform": REQUEST, None: 700_000}
    # A manager sees their teams' split, never the organisation's adjustment.
    assert as_persona("eng_manager").get("/").context["total_usd"] == "0.000500000"


# --- usage + telemetry, one layer only ---------------------------------------------------------------


def test_the_usage_report_total_stands_over_the_gateway(ingest, people, tmp_path):
    # 4,000 input tokens of which 1,000 cached, 500 output: 3,000 x $0.40 + 1,000 x $0.10 + 500 x $1.60
    # per million = $0.0021. The gateway saw 2 of those requests ($0.0010).
    ingest(
        "openai_usage",
        usage_page(tmp_path / "usage.json", input_tokens=4000, cached=1000, output_tokens=500, requests=6),
    )
    when = "2026-08-03T09:00:00+00:00"
    ingest(
        "litellm_spend_logs",
        gateway_log(
            tmp_path / "gw.jsonl", [("a0", "alice@acme.example", when), ("a1", "alice@acme.example", when)]
        ),
    )
    acme = people["alice"].organisation

    assert by_team(acme) == {"platform": 1_000_000, None: 1_100_000}
    assert adjustments() == [(DAY, "openai", PLACEHOLDER_MODEL, None, None, None, 1_100_000, 0, 0, 0, None)]
    # Tokens come from the split layer only: the gateway's two requests, not the usage report's six.
    assert DailyRollup.objects.aggregate(
        requests=Sum("requests"), uncached=Sum("input_uncached_tokens"), output=Sum("output_tokens")
    ) == {"requests": 2, "uncached": 1600, "output": 200}


def test_billing_only_rolls_up_the_invoice_lines_as_before(ingest, acme, tmp_path):
    ingest(
        "openai_costs",
        bill(
            tmp_path,
            ("gpt-4.1-mini-2025-04-14, input", "0.003"),
            ("gpt-4.1-mini-2025-04-14, output", "0.001"),
        ),
    )
    assert by(acme, "model") == {"openai/gpt-4.1-mini-2025-04-14": 4_000_000}
    assert DailyRollup.objects.aggregate(rows=Sum("fact_rows"), cost=Sum("cost_nanos")) == {
        "rows": 2,
        "cost": 4_000_000,
    }
    assert adjustments() == []
    assert not AIModel.objects.filter(name=PLACEHOLDER_MODEL).exists()


def test_telemetry_only_rolls_up_every_request_as_before(ingest, people, tmp_path):
    ingest("litellm_spend_logs", five_requests(tmp_path))
    acme = people["alice"].organisation

    assert by_team(acme) == {"platform": 3 * REQUEST, "payments": 2 * REQUEST}
    assert DailyRollup.objects.aggregate(
        rows=Sum("fact_rows"), cost=Sum("cost_nanos"), reported=Sum("reported_cost_nanos")
    ) == {"rows": 5, "cost": 5 * REQUEST, "reported": 5 * REPORTED}
    assert DailyRollup.objects.count() == 2
    assert adjustments() == []


def test_two_providers_on_one_day_reconcile_independently(ingest, people, tmp_path):
    ingest("litellm_spend_logs", five_requests(tmp_path))
    # Claude Sonnet 4 through the same gateway: 1,000 input x $3 + 100 output x $15 per million = $0.0045.
    claude = {
        "model": "claude-sonnet-4-20250514",
        "custom_llm_provider": "anthropic",
        "spend": 0.0045,
        "metadata": {
            "usage_object": {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {}},
            "spend_logs_metadata": {},
        },
    }
    ingest(
        "litellm_spend_logs",
        gateway_log(
            tmp_path / "claude.jsonl", [("c0", "carol@acme.example", "2026-08-03T11:00:00+00:00")], **claude
        ),
        source="gateway-claude",
    )
    ingest("openai_costs", bill(tmp_path, ("gpt-4.1-mini-2025-04-14, input", "0.004")))
    acme = people["alice"].organisation

    assert by(acme, "provider") == {"openai": 4_000_000, "anthropic": 4_500_000}
    assert by_team(acme) == {"platform": 1_500_000, "payments": 1_000_000, "emea": 4_500_000, None: 1_500_000}
    assert adjustments() == [(DAY, "openai", PLACEHOLDER_MODEL, None, None, None, 1_500_000, 0, 0, 0, None)]


def test_a_day_is_the_organisations_local_day(ingest, people, tmp_path):
    acme = people["alice"].organisation
    acme.time_zone = "Europe/Berlin"  # UTC+2 in August
    acme.save()
    ingest(
        "litellm_spend_logs",
        gateway_log(
            tmp_path / "gw.jsonl",
            [
                ("late", "alice@acme.example", "2026-08-02T23:30:00+00:00"),  # 01:30 on the 3rd in Berlin
                ("later", "alice@acme.example", "2026-08-03T22:30:00+00:00"),  # 00:30 on the 4th in Berlin
            ],
        ),
    )
    # The provider bills in UTC days; the bucket keeps its own date, 2026-08-03.
    ingest("openai_costs", bill(tmp_path, ("gpt-4.1-mini-2025-04-14, input", "0.002")))

    assert by_team(acme, DAY, DAY) == {"platform": REQUEST, None: 1_500_000}
    assert by_team(acme, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=1)) == {"platform": REQUEST}
    assert adjustments() == [(DAY, "openai", PLACEHOLDER_MODEL, None, None, None, 1_500_000, 0, 0, 0, None)]


def test_re_ingesting_and_refreshing_again_change_nothing(ingest, people, tmp_path):
    gateway = five_requests(tmp_path)
    costs = bill(tmp_path, ("gpt-4.1-mini-2025-04-14, input", "0.004"))
    ingest("litellm_spend_logs", gateway)
    ingest("openai_costs", costs)
    before = rollup_snapshot()
    assert len(before) == 3  # alice's, bob's and the adjustment
    assert adjustments() == [(DAY, "openai", PLACEHOLDER_MODEL, None, None, None, 1_500_000, 0, 0, 0, None)]

    again = [ingest("openai_costs", costs), ingest("litellm_spend_logs", gateway)]
    assert [(run.accepted, run.duplicates, run.replaced) for run in again] == [(0, 1, 0), (0, 5, 0)]
    assert rollup_snapshot() == before
    assert refresh_rollups(organisation_id=people["alice"].organisation_id, days=[DAY]) == 3
    assert rollup_snapshot() == before
    assert AIModel.objects.filter(name=PLACEHOLDER_MODEL).count() == 1


# --- the reconciliation view -------------------------------------------------------------------------


@pytest.fixture
def three_days(ingest, people, tmp_path):
    """openai: the 3rd billed and logged, the 4th logged only, the 5th billed only; anthropic logged on the 3rd,
    one of its two requests on a model no price list knows."""
    when = "2026-08-0{}T10:00:00+00:00"
    ingest(
        "litellm_spend_logs",
        gateway_log(
            tmp_path / "gw.jsonl",
            [
                *((f"a{i}", "alice@acme.example", when.format(3)) for i in range(3)),
                *((f"b{i}", "bob@acme.example", when.format(3)) for i in range(2)),
                ("d4", "alice@acme.example", when.format(4)),
            ],
        ),
    )
    ingest(
        "litellm_spend_logs",
        gateway_log(
            tmp_path / "claude.jsonl",
            [("c0", "carol@acme.example", when.format(3))],
            model="claude-sonnet-4-20250514",
            custom_llm_provider="anthropic",
            spend=None,
        ),
        write_jsonl(
            tmp_path / "mystery.jsonl",
            [
                litellm_record(
                    "m0", model="mystery-model-9", custom_llm_provider="anthropic", startTime=when.format(3)
                )
            ],
        ),
        source="gateway-claude",
    )
    ingest(
        "openai_costs",
        costs_page(
            tmp_path / "costs.json",
            {
                DAY_START: [("gpt-4.1-mini-2025-04-14, input", "0.004")],
                DAY_START + 2 * 86_400: [("gpt-4.1-mini, input", "0.0031")],
            },
        ),
    )
    return people["alice"].organisation


def test_reconciliation_rows_show_billed_computed_reported_and_the_gap(three_days):
    rows = reconciliation(organisation_viewer(three_days), start=DAY, end=DAY + dt.timedelta(days=2))
    assert [row.as_dict() for row in rows] == [
        {
            # Claude Sonnet 4 (800 uncached, 200 cache-read, 100 output tokens: $0.00396) counts, but the
            # other request's model has no price, so what our prices make of the day is unknown.
            "day": "2026-08-03",
            "provider": "anthropic",
            "layers": "telemetry",
            "billed_usd": "unknown",
            "computed_usd": "unknown",
            "computed_from": "telemetry",
            "computed_unpriced_rows": 1,
            "reported_usd": "0.000520000",
            "reported_missing_rows": 1,
            "gap_usd": "unknown",
            "status": "no billing data",
            "counted_usd": "0.003960000",
            "adjustment_usd": "0.000000000",
        },
        {
            "day": "2026-08-03",
            "provider": "openai",
            "layers": "billing telemetry",
            "billed_usd": "0.004000000",
            "computed_usd": "0.002500000",
            "computed_from": "telemetry",
            "computed_unpriced_rows": 0,
            "reported_usd": "0.002600000",
            "reported_missing_rows": 0,
            "gap_usd": "0.001500000",
            "status": "billed above our prices",
            "counted_usd": "0.004000000",
            "adjustment_usd": "0.001500000",
        },
        {
            "day": "2026-08-04",
            "provider": "openai",
            "layers": "telemetry",
            "billed_usd": "unknown",
            "computed_usd": "0.000500000",
            "computed_from": "telemetry",
            "computed_unpriced_rows": 0,
            "reported_usd": "0.000520000",
            "reported_missing_rows": 0,
            "gap_usd": "unknown",
            "status": "no billing data",
            "counted_usd": "0.000500000",
            "adjustment_usd": "0.000000000",
        },
        {
            "day": "2026-08-05",
            "provider": "openai",
            "layers": "billing",
            "billed_usd": "0.003100000",
            "computed_usd": "unknown",
            "computed_from": "",
            "computed_unpriced_rows": 0,
            "reported_usd": "unknown",
            "reported_missing_rows": 0,
            "gap_usd": "unknown",
            "status": "no usage report or telemetry",
            "counted_usd": "0.003100000",
            "adjustment_usd": "0.000000000",
        },
    ]


RECONCILIATION = "/sources/reconciliation/"
RANGE = {"start": "2026-08-03", "end": "2026-08-05"}


def cell(html: str, row: str, field: str) -> tuple[str, str]:
    """(data-exact, visible text) of one cell of the page's table."""
    block = html.split(f'data-testid="row-{row}"', 1)[1].split("</tr>", 1)[0]
    found = re.search(rf'data-field="{field}"(?: data-exact="([^"]*)")?>(.*?)</td>', block, re.S)
    assert found, (row, field)
    return found.group(1), re.sub(r"<[^>]+>", "", found.group(2)).strip()


@pytest.mark.parametrize("persona", ["cio", "finops"])
def test_the_page_shows_each_figure_and_unknown_as_unknown(three_days, as_persona, persona):
    response = as_persona(persona).get(RECONCILIATION, RANGE)
    assert response.status_code == 200
    assert response.context["rows"] == reconciliation(
        organisation_viewer(three_days), start=DAY, end=DAY + dt.timedelta(days=2)
    )
    html = response.content.decode()
    assert cell(html, "2026-08-03-openai", "billed") == ("0.004000000", "$0.00")
    assert cell(html, "2026-08-03-openai", "computed") == ("0.002500000", "$0.00 from telemetry")
    assert cell(html, "2026-08-03-openai", "reported") == ("0.002600000", "$0.00")
    assert cell(html, "2026-08-03-openai", "gap") == ("0.001500000", "$0.00")
    assert cell(html, "2026-08-03-openai", "adjustment") == ("0.001500000", "$0.00")
    # No billing data: billed and gap are unknown, never $0.00 or "matches".
    assert cell(html, "2026-08-04-openai", "billed") == ("unknown", "unknown")
    assert cell(html, "2026-08-04-openai", "gap") == ("unknown", "unknown")
    assert cell(html, "2026-08-04-openai", "status")[1] == "no billing data"
    assert cell(html, "2026-08-03-anthropic", "computed") == ("unknown", "unknown (partly unpriced: 1 row)")
    assert cell(html, "2026-08-03-anthropic", "reported") == ("0.000520000", "$0.00 (1 row without)")
    assert cell(html, "2026-08-05-openai", "computed") == ("unknown", "unknown")
    assert cell(html, "2026-08-05-openai", "reported") == ("unknown", "unknown")
    assert "matches" not in html


def test_the_csv_is_the_same_table_exactly(three_days, as_persona):
    client = as_persona("cio")
    response = client.get(RECONCILIATION + "reconciliation.csv", RANGE)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="reconciliation-20260803-20260805.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    expected = reconciliation(organisation_viewer(three_days), start=DAY, end=DAY + dt.timedelta(days=2))
    assert rows == [{key: str(value) for key, value in row.as_dict().items()} for row in expected]
    assert [(r["day"], r["provider"], r["billed_usd"], r["gap_usd"]) for r in rows] == [
        ("2026-08-03", "anthropic", "unknown", "unknown"),
        ("2026-08-03", "openai", "0.004000000", "0.001500000"),
        ("2026-08-04", "openai", "unknown", "unknown"),
        ("2026-08-05", "openai", "0.003100000", "unknown"),
    ]


def test_the_filters_live_in_the_url(three_days, as_persona):
    client = as_persona("cio")
    response = client.get(RECONCILIATION, {**RANGE, "provider": "anthropic"})
    assert [(row.day, row.provider) for row in response.context["rows"]] == [(DAY, "anthropic")]
    assert (
        'href="/sources/reconciliation/reconciliation.csv?start=2026-08-03&amp;end=2026-08-05&amp;provider=anthropic"'
        in (response.content.decode())
    )
    response = client.get(RECONCILIATION, {"start": "2026-08-04", "end": "2026-08-04"})
    assert [(row.day, row.provider) for row in response.context["rows"]] == [
        (DAY + dt.timedelta(days=1), "openai")
    ]
    # Without dates: the last 30 days, which hold nothing of August here.
    response = client.get(RECONCILIATION)
    assert (response.context["end"] - response.context["start"]).days == 29
    assert client.get(RECONCILIATION, {"start": "2026-08-05", "end": "2026-08-03"}).status_code == 400
    assert client.get(RECONCILIATION, {"start": "3 August"}).status_code == 400
    assert (
        client.get(
            RECONCILIATION + "reconciliation.csv", {"start": "2026-08-05", "end": "2026-08-03"}
        ).status_code
        == 400
    )


def test_a_negative_adjustment_is_pointed_out_on_the_page(ingest, as_persona, tmp_path):
    client = as_persona("cio")
    ingest("litellm_spend_logs", five_requests(tmp_path))
    ingest("openai_costs", bill(tmp_path, ("gpt-4.1-mini-2025-04-14, input", "0.002")))
    html = client.get(RECONCILIATION, {"start": "2026-08-03", "end": "2026-08-03"}).content.decode()
    assert cell(html, "2026-08-03-openai", "adjustment") == ("-0.000500000", "$-0.00")
    assert cell(html, "2026-08-03-openai", "counted") == ("0.002000000", "$0.00")
    assert cell(html, "2026-08-03-openai", "status")[1] == "billed below our prices"
    assert 'data-testid="negative-note"' in html


@pytest.mark.parametrize("persona", ["eng_manager", "platform_manager", "alice"])
def test_managers_and_members_get_404(three_days, as_persona, persona):
    client = as_persona(persona)
    assert client.get(RECONCILIATION, RANGE).status_code == 404
    assert client.get(RECONCILIATION + "reconciliation.csv", RANGE).status_code == 404


def test_another_organisations_admin_sees_none_of_ours(three_days, as_persona):
    response = as_persona("outsider").get(RECONCILIATION, RANGE)
    assert response.status_code == 200
    assert response.context["rows"] == []
    assert response.context["providers"] == []
