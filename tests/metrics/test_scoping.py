"""Who sees which outcomes: a manager their teams' (and the teams below), a member nothing here, another
organisation nothing of ours; out of scope is a 404. Spend comes through the real ingestion pipeline."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.http import Http404

from apps.accounts.models import Role
from apps.accounts.scoping import ScopeMissing, Viewer
from apps.metrics import selectors
from apps.metrics.models import Metric, MetricScope, MetricValue
from apps.org.models import Task
from tests.conftest import litellm_record, write_jsonl

WEEK = "start=2026-08-03&end=2026-08-09"
ONE = 500_000  # nano-dollars per test request


@pytest.fixture
def outcomes(acme, people, ingest, tmp_path, prs_merged, put_values):
    """W32 (3 Aug): alice (Platform) 4 requests, bob (Payments) 2, carol (EMEA) 6; one PR value each."""
    records = [
        *(litellm_record(f"a{i}", user="alice@acme.example") for i in range(4)),
        *(litellm_record(f"b{i}", user="bob@acme.example") for i in range(2)),
        *(litellm_record(f"c{i}", user="carol@acme.example") for i in range(6)),
    ]
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "w32.jsonl", records))
    put_values(
        prs_merged, [("platform", "2026-W32", 2), ("payments", "2026-W32", 1), ("emea", "2026-W32", 3)]
    )
    triaged = Metric.objects.create(
        organisation=acme, key="triaged", name="Tickets triaged", unit="tickets", scope=MetricScope.TASK
    )
    Task.objects.create(organisation=acme, key="support-triage", name="Support triage")
    put_values(triaged, [("support-triage", "2026-W32", 40)], subject="task")


def teams_on(html: str) -> set[str]:
    return set(re.findall(r"\?subject=([a-z0-9-]+)&amp;start", html))


def test_finops_sees_every_team_and_task_with_spend_from_the_ledger(as_persona, outcomes):
    client = as_persona("finops")
    response = client.get(f"/metrics/prs-merged/?{WEEK}")

    assert response.status_code == 200
    assert teams_on(response.content.decode()) == {"platform", "payments", "emea"}
    spend = {row["summary"].subject.key: row["summary"].spend_nanos for row in response.context["rows"]}
    assert spend == {"platform": 4 * ONE, "payments": 2 * ONE, "emea": 6 * ONE}
    assert client.get(f"/metrics/triaged/?{WEEK}").status_code == 200


def test_a_manager_sees_their_team_and_the_teams_below_it_only(as_persona, outcomes):
    client = as_persona("eng_manager")

    home = client.get(f"/metrics/?{WEEK}")
    assert home.status_code == 200
    assert teams_on(home.content.decode()) == {"platform", "payments"}
    assert "Tickets triaged" not in home.content.decode()  # task metrics are organisation-wide

    detail = client.get(f"/metrics/prs-merged/?{WEEK}")
    assert [row["summary"].subject.key for row in detail.context["rows"]] == ["payments", "platform"]
    assert "loaded payroll" not in detail.content.decode()  # CIO/FinOps only
    assert client.get(f"/metrics/prs-merged/?subject=emea&{WEEK}").status_code == 404
    assert client.get("/metrics/triaged/").status_code == 404


def test_a_sub_team_manager_sees_neither_parent_nor_siblings(as_persona, outcomes):
    client = as_persona("platform_manager")

    assert teams_on(client.get(f"/metrics/?{WEEK}").content.decode()) == {"platform"}
    assert client.get(f"/metrics/prs-merged/?subject=payments&{WEEK}").status_code == 404
    for page in ("/metrics/new/", "/metrics/adoption/", "/metrics/prs-merged/edit/"):
        assert client.get(page).status_code == 404


def test_a_member_gets_404_on_every_metrics_page_and_no_menu_entry(as_persona, outcomes):
    client = as_persona("alice")

    for page in (
        "/metrics/",
        "/metrics/prs-merged/",
        "/metrics/upload/",
        "/metrics/new/",
        "/metrics/adoption/",
    ):
        assert client.get(page).status_code == 404, page
    assert 'href="/metrics/"' not in client.get("/").content.decode()


def test_managers_and_finops_get_the_menu_entry(as_persona, outcomes):
    assert 'href="/metrics/">ROI</a>' in as_persona("eng_manager").get("/").content.decode()


def test_another_organisations_cio_sees_nothing_of_ours(as_persona, outcomes):
    client = as_persona("outsider")

    home = client.get("/metrics/")
    assert home.status_code == 200
    assert home.context["sections"] == []
    assert client.get("/metrics/prs-merged/").status_code == 404
    assert client.get("/metrics/triaged/").status_code == 404


def test_a_manager_uploads_only_for_their_teams(as_persona, outcomes, prs_merged):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = as_persona("platform_manager")
    content = b"metric,team,period,value\nprs-merged,platform,2026-W33,5\nprs-merged,emea,2026-W33,5\ntriaged,platform,2026-W33,5\n"
    response = client.post("/metrics/upload/", {"file": SimpleUploadedFile("mine.csv", content)})

    assert [error.message() for error in response.context["result"].errors] == [
        "mine.csv, line 3, field team: no team 'emea'",  # the same words as for a team that does not exist
        "mine.csv, line 4, field metric: no metric 'triaged'",
    ]
    assert MetricValue.objects.filter(metric=prs_merged, team__slug="platform").count() == 2
    assert MetricValue.objects.filter(metric=prs_merged, team__slug="emea").values_list(
        "value", flat=True
    ).get() == Decimal(3)


def test_the_team_panel_selector_refuses_out_of_scope_teams(acme, teams, outcomes):
    platform_manager = Viewer(acme.pk, Role.MANAGER, frozenset({teams["platform"].pk}), None)
    member = Viewer(acme.pk, Role.MEMBER, frozenset(), None)
    import datetime as dt

    start, end = dt.date(2026, 8, 3), dt.date(2026, 8, 9)
    assert (
        selectors.team_roi(platform_manager, teams["platform"], start, end).rows[0].summary.spend_nanos
        == 4 * ONE
    )
    with pytest.raises(Http404):
        selectors.team_roi(platform_manager, teams["payments"], start, end)
    with pytest.raises(Http404):
        selectors.team_roi(member, teams["platform"], start, end)
    assert selectors.team_roi(platform_manager, teams["platform"], start, end).payroll is None


def test_metric_values_without_a_viewer_fail_closed(db):
    with pytest.raises(ScopeMissing):
        selectors.scope_metric_values(MetricValue.objects.all(), None)
