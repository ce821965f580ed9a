"""GET /api/v1/spend/: the same numbers as `manage.py spend`, the overview and the exports, scoped by viewer.

Today: alice 3 requests, bob 2, carol 1, a stranger 1 (unattributed) - 500,000 nano-dollars each at list
price (tests.dashboards.test_scoping); one request of a model no price knows (LiteLLM said $0.00052).
"""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.services import machine_key_create
from tests.conftest import litellm_record, write_jsonl

ONE = 500_000


@pytest.fixture
def usage(ingest, people, tmp_path):
    now = timezone.now().replace(microsecond=0).isoformat()
    records = [
        *(litellm_record(f"a{i}", user="alice@acme.example", startTime=now) for i in range(3)),
        *(litellm_record(f"b{i}", user="bob@acme.example", startTime=now) for i in range(2)),
        litellm_record("c0", user="carol@acme.example", startTime=now),
        litellm_record("u0", user="stranger@elsewhere.example", startTime=now),
        litellm_record("x0", user="alice@acme.example", startTime=now, model="acme-llm-2027", custom_llm_provider="acme"),
    ]  # fmt: skip
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "today.jsonl", records))
    return timezone.now().date().isoformat()


def get(client, day: str, group_by: str = "team", **headers):
    return client.get("/api/v1/spend/", {"group_by": group_by, "start": day, "end": day}, **headers)


def test_the_cio_gets_every_group_with_honest_buckets_equal_to_the_spend_command(as_persona, usage, capsys):
    response = get(as_persona("cio"), usage)
    assert response.status_code == 200
    body = response.json()
    assert {group["key"]: group["cost_usd"] for group in body["groups"]} == {
        "platform": "0.001500000",
        "payments": "0.001000000",
        "emea": "0.000500000",
        None: "0.000500000",
    }
    assert body["totals"] == {
        "cost_usd": "0.003500000",
        "list_cost_usd": "0.003500000",
        "billed_usd": "0.000000000",
        "computed_usd": "0.003500000",
        "estimated_usd": "0.000000000",
        "unpriced_rows": 1,
        "unpriced_reported_usd": "0.000520000",
        "attributed_usd": "0.003000000",
        "unattributed_usd": "0.000500000",
    }
    call_command("spend", "--by", "team", "--start", usage, "--end", usage)
    cli = json.loads(capsys.readouterr().out)
    api = {group["key"]: {k: v for k, v in group.items() if k != "label"} for group in body["groups"]}
    assert {group["key"]: group for group in cli} == api


def test_a_manager_gets_only_their_teams(as_persona, usage):
    body = get(as_persona("eng_manager"), usage).json()
    assert sorted(group["key"] for group in body["groups"]) == ["payments", "platform"]
    assert body["totals"]["cost_usd"] == f"{5 * ONE / 1e9:.9f}"
    body = get(as_persona("platform_manager"), usage, group_by="person").json()
    assert [group["key"] for group in body["groups"]] == ["alice@acme.example"]


def test_a_member_gets_their_own_usage_and_an_outsider_nothing(as_persona, usage, client):
    body = get(as_persona("alice"), usage, group_by="model").json()
    assert {group["key"]: group["cost_usd"] for group in body["groups"]} == {
        "openai/gpt-4.1-mini-2025-04-14": "0.001500000",
        "acme/acme-llm-2027": "0.000000000",
    }
    client.logout()
    body = get(as_persona("outsider"), usage).json()
    assert (body["groups"], body["totals"]["cost_usd"]) == ([], "0.000000000")


def test_a_read_key_reads_its_organisation_and_other_keys_do_not(acme, usage, client):
    read = machine_key_create(organisation=acme, name="finance bi", scopes=["read"])[1]
    response = get(client, usage, HTTP_AUTHORIZATION=f"Bearer {read}")
    assert response.status_code == 200
    assert response.json()["totals"]["cost_usd"] == "0.003500000"
    ingest_key = machine_key_create(organisation=acme, name="pusher", scopes=["ingest"])[1]
    assert get(client, usage, HTTP_AUTHORIZATION=f"Bearer {ingest_key}").status_code == 403
    assert get(client, usage, HTTP_AUTHORIZATION="Bearer sw_nope_nope").status_code in (401, 403)
    assert get(client, usage).status_code == 403  # anonymous


def test_bad_parameters_answer_400_naming_the_field(as_persona, usage):
    client = as_persona("cio")
    response = client.get("/api/v1/spend/", {"group_by": "galaxy", "start": usage, "end": usage})
    assert response.status_code == 400 and "group_by" in response.json()
    response = client.get("/api/v1/spend/", {"group_by": "team", "start": "2026-08-05", "end": "2026-08-01"})
    assert response.status_code == 400 and "end" in response.json()


def test_the_schema_documents_the_spend_operation(tmp_path):
    out = tmp_path / "schema.json"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(out)
    )
    operation = json.loads(out.read_text())["paths"]["/api/v1/spend/"]["get"]
    assert operation["operationId"] == "spend_list"
    assert {parameter["name"] for parameter in operation["parameters"]} == {"group_by", "start", "end"}
    assert {"cookieAuth": []} in operation["security"] and {"machineKey": []} in operation["security"]
