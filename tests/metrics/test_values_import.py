"""Metric values by CSV upload and by API: one value per metric, team (or task) and period; sending a period
again replaces it, sending the same value again changes nothing; bad rows are reported by file, line
and field while the good rows are kept."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.accounts.models import KeyScope
from apps.accounts.services import machine_key_create
from apps.metrics.models import Metric, MetricGrain, MetricScope, MetricValue
from apps.org.models import Organisation, Task, Team

URL = "/api/v1/metrics/prs-merged/values/"
NUMBER = "NUMBER"


def stored(metric: Metric) -> dict:
    return {
        (value.team.slug if value.team_id else value.task.key, value.period_start.isoformat()): value.value
        for value in MetricValue.objects.filter(metric=metric).select_related("team", "task")
    }


def upload(client, content: str | bytes, *, name: str = "values.csv", metric: Metric | None = None):
    data = content.encode() if isinstance(content, str) else content
    form = {"file": SimpleUploadedFile(name, data, content_type="text/csv")}
    if metric is not None:
        form["metric"] = str(metric.pk)
    return client.post("/metrics/upload/", form)


def post(client, key: str, body, url: str = URL):
    return client.post(
        url, data=orjson.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )


# --- CSV ---------------------------------------------------------------------------------------------------

GOOD_CSV = "metric,team,period,value\nprs-merged,platform,2026-08-03,7\nprs-merged,payments,2026-W32,12.5\n"


def test_uploading_the_same_file_twice_changes_nothing_the_second_time(as_persona, teams, prs_merged):
    client = as_persona("finops")

    first = upload(client, GOOD_CSV)
    assert first.status_code == 200
    assert first.context["result"].summary() == {
        "rows": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
    }
    stamps = list(MetricValue.objects.order_by("pk").values_list("updated_at", flat=True))

    again = upload(client, GOOD_CSV)
    assert again.context["result"].summary() == {
        "rows": 2,
        "created": 0,
        "updated": 0,
        "unchanged": 2,
        "rejected": 0,
    }
    assert list(MetricValue.objects.order_by("pk").values_list("updated_at", flat=True)) == stamps
    assert stored(prs_merged) == {
        ("platform", "2026-08-03"): Decimal("7"),
        ("payments", "2026-08-03"): Decimal("12.5"),
    }


def test_a_period_sent_again_replaces_its_value(as_persona, teams, prs_merged):
    client = as_persona("finops")
    upload(client, GOOD_CSV)

    response = upload(client, "metric,team,period,value\nprs-merged,platform,2026-W32,8\n")

    assert response.context["result"].summary() == {
        "rows": 1,
        "created": 0,
        "updated": 1,
        "unchanged": 0,
        "rejected": 0,
    }
    assert stored(prs_merged) == {
        ("platform", "2026-08-03"): Decimal("8"),
        ("payments", "2026-08-03"): Decimal("12.5"),
    }
    assert MetricValue.objects.count() == 2


def test_bad_rows_are_reported_by_file_line_and_field_and_good_rows_kept(as_persona, teams, prs_merged):
    today = dt.datetime.now(dt.UTC).date()  # Acme's time zone is UTC
    future = (today + dt.timedelta(days=14 - today.weekday())).isoformat()  # a Monday two weeks ahead
    content = (
        "metric,team,period,value\n"
        "prs-merged,platform,2026-08-03,7\n"  # line 2: good
        "prs-merged,platform,2026-08-10,abc\n"  # 3
        "prs-merged,platform,2026-08-17,-2\n"  # 4
        "prs-merged,,2026-08-17,2\n"  # 5
        "prs-merged,nowhere,2026-08-17,2\n"  # 6
        "prs-merged,platform,2026-08-09,2\n"  # 7: a Sunday
        "prs-merged,platform,2026-W32,9\n"  # 8: the same week as line 2
        "prs-merged,payments,2026-08-03,1.23456\n"  # 9
        f"prs-merged,payments,{future},1\n"  # 10
        "tickets,payments,2026-08-03,1\n"  # 11
        "prs-merged,payments,2026-08-10,4\n"  # 12: good
    )
    response = upload(as_persona("finops"), content)

    result = response.context["result"]
    assert result.summary() == {"rows": 11, "created": 2, "updated": 0, "unchanged": 0, "rejected": 9}
    assert [error.message() for error in result.errors] == [
        "values.csv, line 3, field value: expected a number, got 'abc'",
        "values.csv, line 4, field value: is negative (-2); outcome values are zero or more",
        "values.csv, line 5, field team: is missing (prs-merged is counted per team)",
        "values.csv, line 6, field team: no team 'nowhere'",
        "values.csv, line 7, field period: 2026-08-09 is a Sunday; weekly periods start on Monday "
        "(this day is in the week of 2026-08-03, 2026-W32)",
        "values.csv, line 8, field period: the same metric, team and period as line 2; send one value per period",
        "values.csv, line 9, field value: 1.23456 has more than 4 decimal places",
        f"values.csv, line 10, field period: {future} is in the future",
        "values.csv, line 11, field metric: no metric 'tickets'",
    ]
    assert stored(prs_merged) == {
        ("platform", "2026-08-03"): Decimal("7"),
        ("payments", "2026-08-10"): Decimal("4"),
    }
    page = response.content.decode()
    assert "9 rejected" in page and "2026-08-09 is a Sunday" in page


def test_semicolons_a_byte_order_mark_crlf_and_quoted_newlines_are_read(as_persona, teams, prs_merged):
    content = '\ufeffTeam;Value;Period\r\nplatform;"7";2026-08-03\r\n"pay\nments";3;2026-08-03\r\npayments;5;2026-08-10\r\n'
    response = upload(as_persona("finops"), content.encode("utf-8"), metric=prs_merged)

    result = response.context["result"]
    assert result.summary() == {"rows": 3, "created": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    assert result.errors[0].message() == "values.csv, line 3, field team: no team 'pay\\nments'"
    assert stored(prs_merged) == {
        ("platform", "2026-08-03"): Decimal("7"),
        ("payments", "2026-08-10"): Decimal("5"),
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "metric,teams,period,value\n",
            "values.csv line 1: unknown column(s) teams; the columns are metric, team or task, period, value",
        ),
        ("metric,team,period\n", "values.csv line 1: missing column(s) value"),
        ("metric,period,value\n", "values.csv line 1: missing column(s) team (or task)"),
        ("\n\n", "values.csv: the file is empty (expected a header line)"),
    ],
)
def test_a_header_that_cannot_be_mapped_refuses_the_file_by_name(as_persona, prs_merged, content, message):
    response = upload(as_persona("finops"), content)

    assert response.status_code == 400
    assert response.context["file_error"] == message
    assert MetricValue.objects.count() == 0


def test_monthly_and_task_metrics_read_their_own_periods_and_subjects(acme, as_persona, teams):
    triage = Task.objects.create(organisation=acme, key="support-triage", name="Support triage")
    revenue = Metric.objects.create(
        organisation=acme, key="revenue", name="Revenue", unit="USD", grain=MetricGrain.MONTH
    )
    triaged = Metric.objects.create(
        organisation=acme, key="triaged", name="Triaged", unit="tickets", scope=MetricScope.TASK
    )
    content = (
        "metric,team,task,period,value\n"
        "revenue,emea,,2026-08,12000.50\n"
        "revenue,emea,,2026-09-01,13000\n"
        "revenue,emea,,2026-09-15,1\n"
        "triaged,,support-triage,2026-W32,400\n"
        "triaged,emea,,2026-W33,400\n"
    )
    result = upload(as_persona("cio"), content).context["result"]

    assert [error.message() for error in result.errors] == [
        "values.csv, line 4, field period: 2026-09-15 is not the first day of a month (write 2026-09 or 2026-09-01)",
        "values.csv, line 6, field team: triaged is counted per task; leave team empty",
    ]
    assert stored(revenue) == {
        ("emea", "2026-08-01"): Decimal("12000.5"),
        ("emea", "2026-09-01"): Decimal("13000"),
    }
    assert stored(triaged) == {(triage.key, "2026-08-03"): Decimal("400")}


# --- API ---------------------------------------------------------------------------------------------------


def test_the_api_upserts_and_a_repost_changes_nothing(client, teams, prs_merged, ingest_key):
    body = {
        "values": [
            {"team": "platform", "period": "2026-W32", "value": 7},
            {"team": "payments", "period": "2026-08-03", "value": "2.5"},
        ]
    }

    first = post(client, ingest_key, body)
    assert first.status_code == 200, first.content
    assert first.json() == {
        "metric": "prs-merged",
        "rows": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "errors": [],
    }

    again = post(client, ingest_key, body).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)

    changed = post(
        client, ingest_key, {"values": [{"team": "platform", "period": "2026-08-03", "value": 8}]}
    ).json()
    assert (changed["created"], changed["updated"], changed["unchanged"]) == (0, 1, 0)
    assert stored(prs_merged) == {
        ("platform", "2026-08-03"): Decimal("8"),
        ("payments", "2026-08-03"): Decimal("2.5"),
    }


def test_the_api_reports_bad_items_by_position_and_keeps_the_good_ones(client, teams, prs_merged, ingest_key):
    body = {
        "values": [
            {"team": "platform", "period": "2026-W32", "value": NUMBER},
            {"team": "platform", "period": "2026-W33", "value": True},
            {"team": "payments", "period": "2026-W99", "value": 1},
            "not an object",
            {"team": "payments", "period": "2026-W32", "value": 1, "colour": "red"},
        ]
    }
    # The number as JSON text with 15 significant digits (a Python float would already have rounded it).
    text = orjson.dumps(body).replace(b'"NUMBER"', b"12345678901.2345")
    response = client.post(
        URL, data=text, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {ingest_key}"
    )

    assert response.status_code == 200
    answer = response.json()
    assert (answer["created"], answer["rejected"]) == (1, 4)
    assert [(e["line"], e["field"], e["reason"]) for e in answer["errors"]] == [
        (2, "value", "expected a number, got True"),
        (3, "period", "'2026-W99' is not an ISO week"),
        (4, "-", "expected an object with team/task, period and value, got 'not an object'"),
        (5, "colour", "unknown field(s) colour; expected team or task, period, value"),
    ]
    assert answer["errors"][0]["message"] == "request body, line 2, field value: expected a number, got True"
    # Read as an exact decimal, never through a float.
    assert stored(prs_merged) == {("platform", "2026-08-03"): Decimal("12345678901.2345")}


def test_the_api_answers_a_malformed_body_with_400(client, prs_merged, ingest_key):
    assert post(client, ingest_key, [{"team": "platform"}]).status_code == 400
    response = client.post(
        URL, data=b"{nope", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {ingest_key}"
    )
    assert response.status_code == 400
    assert MetricValue.objects.count() == 0


def test_the_api_needs_a_key_with_the_ingest_scope(client, acme, prs_merged):
    _, gateway_key = machine_key_create(organisation=acme, name="gateway", scopes=[KeyScope.GATEWAY])
    body = {"values": [{"team": "platform", "period": "2026-W32", "value": 7}]}

    assert client.post(URL, data=orjson.dumps(body), content_type="application/json").status_code in (
        401,
        403,
    )
    assert post(client, gateway_key, body).status_code == 403
    assert post(client, "sw_nothing_here", body).status_code in (401, 403)
    assert MetricValue.objects.count() == 0


def test_another_organisations_key_is_refused(client, acme, teams, prs_merged):
    globex = Organisation.objects.create(name="Globex", slug="globex")
    Team.objects.create(organisation=globex, name="Platform", slug="platform")
    _, globex_key = machine_key_create(organisation=globex, name="globex-bi", scopes=[KeyScope.INGEST])
    body = {"values": [{"team": "platform", "period": "2026-W32", "value": 7}]}

    assert post(client, globex_key, body).status_code == 404  # Acme's metric does not exist for Globex

    # Globex's own metric of the same key cannot name Acme's teams either.
    globex_metric = Metric.objects.create(organisation=globex, key="prs-merged", name="PRs", unit="PRs")
    Team.objects.filter(organisation=globex).delete()
    answer = post(client, globex_key, body).json()
    assert answer["errors"][0]["reason"] == "no team 'platform'"
    assert MetricValue.objects.filter(metric=prs_merged).count() == 0
    assert MetricValue.objects.filter(metric=globex_metric).count() == 0


def test_the_schema_documents_the_values_operation(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.json"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(out)
    )
    operation = orjson.loads(out.read_bytes())["paths"]["/api/v1/metrics/{key}/values/"]["post"]
    assert operation["operationId"] == "metric_values_push"
    assert operation["security"] == [{"machineKey": []}]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "404", "413"}
