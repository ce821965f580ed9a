"""CSV downloads and the FOCUS 1.3 export: formula-safe (TESTPLAN I1), equal to the dashboards, the API and
`manage.py spend` to the nano-dollar (I2), server-chosen file names and no caching (I3)."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from apps.exports.focus import COLUMNS, FOCUS_COLUMNS
from apps.ingestion.services import ingest_files, source_get_or_create
from apps.org.models import Organisation
from apps.usage.models import DailyRollup
from tests.conftest import litellm_record, write_jsonl

ONE = 500_000
NASTY = [
    '=HYPERLINK("http://evil.example","x")',
    "+1 555 0100",
    "-cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
    " =x",
    "\u00a0=x",
    "ok\n=cmd",
]


@pytest.fixture
def usage(ingest, people, tmp_path):
    now = timezone.now().replace(microsecond=0).isoformat()
    records = [
        *(litellm_record(f"a{i}", user="alice@acme.example", startTime=now) for i in range(3)),
        *(litellm_record(f"b{i}", user="bob@acme.example", startTime=now) for i in range(2)),
        litellm_record("c0", user="carol@acme.example", startTime=now),
        litellm_record("u0", user="stranger@elsewhere.example", startTime=now),
    ]
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "today.jsonl", records))
    return timezone.now().date().isoformat()


def read_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.DictReader(io.StringIO(body.decode())))


def cell_is_safe(value: str) -> bool:
    return all(
        not line.lstrip(" \u00a0").startswith(("=", "+", "-", "@", "\t", "\r")) for line in value.split("\n")
    )


def test_spend_csv_defangs_every_formula_and_keeps_money_numeric(as_persona, usage, people):
    for person, name in zip(people.values(), NASTY, strict=False):
        person.name = name
        person.save()
    response = as_persona("cio").get(
        "/exports/spend.csv", {"group_by": "person", "start": usage, "end": usage}
    )
    assert response.status_code == 200
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="spend-by-person-{usage.replace("-", "")}-{usage.replace("-", "")}.csv"'
    )
    assert response["Cache-Control"] == "no-store"
    rows = read_csv(response)
    labels = {row["label"] for row in rows}
    assert {"'" + NASTY[0], "'" + NASTY[1], "'" + NASTY[2]} <= labels
    for row in rows:
        assert cell_is_safe(row["label"]) and cell_is_safe(row["key"] or "")
        Decimal(row["cost_usd"]), Decimal(row["list_cost_usd"]), Decimal(row["unattributed_usd"])
    assert sum(Decimal(row["cost_usd"]) for row in rows) == Decimal(7 * ONE) / 10**9


def test_a_managers_spend_csv_has_only_their_teams(as_persona, usage):
    rows = read_csv(as_persona("platform_manager").get("/exports/spend.csv", {"start": usage, "end": usage}))
    assert [(row["key"], row["cost_usd"]) for row in rows] == [("platform", "0.001500000")]


def test_focus_export_columns_and_totals_equal_spend_the_api_and_the_overview(
    as_persona, usage, capsys, tmp_path
):
    client = as_persona("cio")
    response = client.get("/exports/focus.csv", {"start": usage, "end": usage})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert response["Content-Disposition"].startswith('attachment; filename="focus-1.3-')
    rows = read_csv(response)
    assert tuple(rows[0].keys()) == COLUMNS
    assert set(FOCUS_COLUMNS) >= {
        "BilledCost",
        "EffectiveCost",
        "ListCost",
        "ServiceProviderName",
        "HostProviderName",
    }
    # One row per rollup row: 4 owners (3 people + the unattributed stranger), one model.
    assert len(rows) == DailyRollup.objects.count() == 4
    alice = next(row for row in rows if row["x_Person"] == "alice@acme.example")
    assert (alice["x_Team"], alice["x_TeamName"], alice["BilledCost"], alice["ListCost"]) == (
        "platform", "Platform", "0.001500000", "0.001500000",
    )  # fmt: skip
    assert json.loads(alice["Tags"]) == {"team": "platform", "person": "alice@acme.example"}
    assert (alice["ChargeCategory"], alice["ConsumedUnit"], alice["ConsumedQuantity"]) == (
        "Usage",
        "Tokens",
        "3300",
    )
    assert (alice["PricingQuantity"], alice["PricingUnit"], alice["ServiceName"]) == (
        "0.0033",
        "1000000 Tokens",
        "OpenAI API",
    )
    assert alice["ChargePeriodStart"] == f"{usage}T00:00:00Z"

    focus_total = sum(Decimal(row["BilledCost"]) for row in rows)
    assert focus_total == sum(Decimal(row["EffectiveCost"]) for row in rows) == Decimal(7 * ONE) / 10**9
    call_command("spend", "--by", "team", "--start", usage, "--end", usage)
    assert sum(Decimal(group["cost_usd"]) for group in json.loads(capsys.readouterr().out)) == focus_total
    api = client.get("/api/v1/spend/", {"group_by": "person", "start": usage, "end": usage}).json()
    assert Decimal(api["totals"]["cost_usd"]) == focus_total
    assert Decimal(client.get("/").context["total_usd"]) == focus_total
    # The command writes the same file.
    out = tmp_path / "focus.csv"
    call_command("export_focus", "--start", usage, "--end", usage, "--output", str(out))
    assert list(csv.DictReader(out.open())) == rows


def test_the_focus_export_reads_back_through_the_focus_adapter_to_the_same_total(as_persona, usage, tmp_path):
    response = as_persona("cio").get("/exports/focus.csv", {"start": usage, "end": usage})
    path = tmp_path / "export.csv"
    path.write_bytes(b"".join(response.streaming_content))
    other = Organisation.objects.create(name="Books", slug="books", time_zone="UTC")
    run = ingest_files(
        source=source_get_or_create(organisation=other, name="focus", format="focus"),
        format="focus",
        paths=[path],
    )
    assert (run.accepted, run.rejected) == (4, 0)
    assert DailyRollup.objects.filter(organisation=other).aggregate(cost=Sum("cost_nanos"))["cost"] == 7 * ONE


@pytest.mark.parametrize("persona", ["alice", "eng_manager", "platform_manager"])
def test_only_cio_and_finops_get_the_focus_export(as_persona, usage, persona):
    response = as_persona(persona).get("/exports/focus.csv", {"start": usage, "end": usage})
    assert response.status_code == 404


def test_another_organisations_cio_exports_nothing_of_ours(as_persona, usage):
    response = as_persona("outsider").get("/exports/focus.csv", {"start": usage, "end": usage})
    assert (response.status_code, read_csv(response)) == (200, [])


def test_focus_text_cells_are_formula_safe(as_persona, usage, teams):
    teams["platform"].name = NASTY[0]
    teams["platform"].save()
    rows = read_csv(as_persona("finops").get("/exports/focus.csv", {"start": usage, "end": usage}))
    names = {row["x_TeamName"] for row in rows}
    assert "'" + NASTY[0] in names
    assert all(
        cell_is_safe(row[column])
        for row in rows
        for column in ("x_TeamName", "x_PersonName", "ChargeDescription")
    )
