"""Who may see what: named people with different rights; out of scope answers 404 (TESTPLAN F2-F5)."""

import html
import json
import re
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.scoping import ScopeMissing, scope_usage
from apps.ingestion.models import IngestionRun
from apps.usage.models import DailyRollup
from tests.dashboards.conftest import ONE
from tests.dashboards.helpers import card, csv_rows, nanos


def overview_total(client) -> str:
    response = client.get("/")
    assert response.status_code == 200
    return response.context["total_usd"]


def test_cio_sees_the_whole_organisation_and_it_equals_the_spend_command(as_persona, usage, capsys):
    client = as_persona("cio")
    assert overview_total(client) == f"{7 * ONE / 1e9:.9f}"
    today = timezone.now().date().isoformat()
    call_command("spend", "--by", "team", "--start", today, "--end", today)
    groups = json.loads(capsys.readouterr().out)
    assert sum(int(g["cost_usd"].replace(".", "")) for g in groups) == 7 * ONE
    assert {g["key"]: g["requests"] for g in groups} == {"platform": 3, "payments": 2, "emea": 1, None: 1}
    response = client.get("/")
    assert response.context["unattributed_usd"] == f"{ONE / 1e9:.9f}"


def test_a_manager_sees_their_team_and_the_teams_below_it(as_persona, usage, people):
    client = as_persona("eng_manager")
    assert overview_total(client) == f"{5 * ONE / 1e9:.9f}"  # alice + bob, not carol, not the stranger
    assert client.get("/teams/engineering/").status_code == 200
    assert client.get("/teams/platform/").status_code == 200
    assert client.get("/teams/payments/").status_code == 200
    assert client.get("/teams/sales/").status_code == 404
    assert client.get("/teams/emea/").status_code == 404
    assert client.get(f"/people/{people['alice'].pk}/").status_code == 200
    assert client.get(f"/people/{people['carol'].pk}/").status_code == 404


def test_a_sub_team_manager_sees_neither_parent_nor_siblings(as_persona, usage, people):
    client = as_persona("platform_manager")
    assert overview_total(client) == f"{3 * ONE / 1e9:.9f}"
    assert client.get("/teams/platform/").status_code == 200
    assert client.get("/teams/engineering/").status_code == 404
    assert client.get("/teams/payments/").status_code == 404
    assert client.get(f"/people/{people['bob'].pk}/").status_code == 404


def test_a_member_sees_only_themself(as_persona, usage, people):
    client = as_persona("alice")
    assert overview_total(client) == f"{3 * ONE / 1e9:.9f}"
    response = client.get(f"/people/{people['alice'].pk}/")
    assert response.status_code == 200
    assert card(response, "total-usd") == 3 * ONE
    assert client.get(f"/people/{people['bob'].pk}/").status_code == 404
    assert client.get("/teams/platform/").status_code == 404


def test_another_organisations_admin_sees_nothing_of_ours(as_persona, usage, people):
    client = as_persona("outsider")
    assert overview_total(client) == f"{0:.9f}"
    assert client.get("/teams/platform/").status_code == 404
    for person in people.values():
        assert client.get(f"/people/{person.pk}/").status_code == 404


def test_anonymous_visitors_are_sent_to_login(client, usage):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_user_without_a_membership_gets_404(client, django_user_model, usage):
    client.force_login(django_user_model.objects.create_user(username="x@x.example", password="pw-123456789"))
    assert client.get("/").status_code == 404


def test_usage_queries_without_a_viewer_fail_closed(db):
    with pytest.raises(ScopeMissing):
        scope_usage(DailyRollup.objects.all(), None)


def test_the_overview_page_runs_a_fixed_number_of_queries(as_persona, usage, django_assert_max_num_queries):
    client = as_persona("cio")
    with django_assert_max_num_queries(12):
        client.get("/")


PERSONAS = ("cio", "finops", "eng_manager", "platform_manager", "alice", "outsider")
ORGANISATION_WIDE = {"cio": 200, "finops": 200, "eng_manager": 404, "platform_manager": 404, "alice": 404}
EVERYONE = dict.fromkeys(PERSONAS, 200)


def _acme(statuses: dict[str, int]) -> dict[str, int]:
    """Pages about one of Acme's objects: another organisation's CIO gets 404, whatever their role."""
    return {**statuses, "outsider": 404}


# Every URL of apps.dashboards, with the status each persona gets (TESTPLAN F1). A route without an
# entry fails test_every_dashboard_route_is_in_the_access_matrix.
ACCESS: dict[str, tuple[str, dict[str, int]]] = {
    "overview": ("/", EVERYONE),
    # Members see their own usage only (their person page); the team pages are not theirs.
    "teams": ("/teams/", {**EVERYONE, "alice": 404}),
    "teams-csv": ("/teams/tree.csv", {**EVERYONE, "alice": 404}),
    "team": ("/teams/engineering/", _acme({"cio": 200, "finops": 200, "eng_manager": 200, "platform_manager": 404, "alice": 404})),
    "team-csv": ("/teams/engineering/people.csv", _acme({"cio": 200, "finops": 200, "eng_manager": 200, "platform_manager": 404, "alice": 404})),
    "person": ("/people/{alice}/", _acme(dict.fromkeys(("cio", "finops", "eng_manager", "platform_manager", "alice"), 200))),
    "person-csv": ("/people/{alice}/models.csv", _acme(dict.fromkeys(("cio", "finops", "eng_manager", "platform_manager", "alice"), 200))),
    "models": ("/models/", EVERYONE),
    "models-csv": ("/models/models.csv", EVERYONE),
    "tasks": ("/tasks/", EVERYONE),
    "tasks-csv": ("/tasks/tasks.csv", EVERYONE),
    "task": ("/tasks/code-review/", _acme(EVERYONE)),
    "task-csv": ("/tasks/code-review/people.csv", _acme(EVERYONE)),
    "sources": ("/sources/", {**ORGANISATION_WIDE, "outsider": 200}),
    "sources-csv": ("/sources/runs.csv", {**ORGANISATION_WIDE, "outsider": 200}),
    "facts": ("/facts/", EVERYONE),
}  # fmt: skip
# Beyond the matrix's one example per route: the neighbours each persona must not reach.
FORBIDDEN = {
    "cio": [],
    "finops": [],
    "eng_manager": ["/teams/sales/", "/teams/emea/tree.csv", "/people/{carol}/", "/people/{carol}/trend.csv",
                    "/facts/?team=emea", "/facts/?person={carol}", "/sources/pulls/"],
    "platform_manager": ["/teams/payments/", "/teams/engineering/trend.csv", "/people/{bob}/",
                         "/people/{bob}/tasks.csv", "/facts/?team=payments", "/facts/?person={bob}"],
    "alice": ["/people/{bob}/", "/people/{bob}/trend.csv", "/teams/platform/", "/teams/platform/models.csv",
              "/facts/?person={bob}", "/facts/?team=platform", "/tasks/?team=platform"],
    "outsider": ["/people/{bob}/", "/teams/platform/", "/facts/?team=platform", "/tasks/code-review/trend.csv"],
}  # fmt: skip


def test_every_dashboard_route_is_in_the_access_matrix():
    from apps.dashboards.urls import urlpatterns

    names = [pattern.name for pattern in urlpatterns]
    assert len(names) == len(set(names))
    assert set(names) == set(ACCESS), "add new routes to ACCESS (and remove gone ones)"
    for name, (_, statuses) in ACCESS.items():
        assert set(statuses) == set(PERSONAS), name


@pytest.mark.parametrize("persona", PERSONAS)
def test_each_persona_gets_the_matrix_status_on_every_dashboard_route(as_persona, usage, people, persona):
    client = as_persona(persona)
    ids = {name: person.pk for name, person in people.items()}
    for name, (path, statuses) in ACCESS.items():
        response = client.get(path.format(**ids))
        assert response.status_code == statuses[persona], f"{persona} {name} {path}"
    for path in FORBIDDEN[persona]:
        assert client.get(path.format(**ids)).status_code == 404, f"{persona} reached {path}"


# What each persona's pages add up to (nano-dollars): the organisation, Engineering (alice + bob),
# Platform (alice), alice herself; another organisation's CIO sees none of it.
VISIBLE_SPEND = {"cio": 7, "finops": 7, "eng_manager": 5, "platform_manager": 3, "alice": 3, "outsider": 0}


@pytest.mark.parametrize("persona", PERSONAS)
def test_counts_and_charts_exclude_what_a_persona_may_not_see(as_persona, usage, persona):
    client = as_persona(persona)
    expected = VISIBLE_SPEND[persona] * ONE
    for path in ("/models/", "/tasks/"):
        assert card(client.get(path), "total-usd") == expected, path
    models_csv = csv_rows(client.get("/models/models.csv"))
    assert sum(nanos(row["cost_usd"]) for row in models_csv) == expected
    facts = client.get("/facts/")
    assert len(facts.context["page"].facts) == VISIBLE_SPEND[persona]
    if persona != "alice":
        tree = csv_rows(client.get("/teams/tree.csv"))
        assert sum(nanos(row["own_cost_usd"]) for row in tree) == expected


def _with_csvs(page: str, *tables: str) -> set[str]:
    return {page, *(f"{page}{table}.csv" for table in tables)}


def _shown_paths(persona: str, people: dict, run_id: int) -> set[str]:
    """The pages (and downloads) a persona's menus, tables and charts link to, query strings aside."""
    paths = {"/facts/"}
    paths |= _with_csvs("/models/", "models", "requests", "tiers", "trend")
    paths |= _with_csvs("/tasks/", "tasks", "trend") | _with_csvs(
        "/tasks/code-review/", "trend", "teams", "people", "models"
    )
    people_shown = {
        "cio": "alice bob carol",
        "finops": "alice bob carol",
        "eng_manager": "alice bob",
        "platform_manager": "alice",
        "alice": "alice",
        "outsider": "",
    }[persona].split()
    for name in people_shown:
        paths |= _with_csvs(f"/people/{people[name].pk}/", "trend", "models", "tasks")
    teams_shown = {
        "cio": "engineering platform payments sales emea",
        "finops": "engineering platform payments sales emea",
        "eng_manager": "engineering platform payments",
        "platform_manager": "platform",
        "alice": None,
        "outsider": "",
    }[persona]
    if teams_shown is not None:
        paths |= _with_csvs("/teams/", "tree", "trend", "people")
        for slug in teams_shown.split():
            paths |= _with_csvs(f"/teams/{slug}/", "trend", "people", "models", "tasks", "sub-teams")
    if persona in ("cio", "finops", "outsider"):
        paths |= _with_csvs("/sources/", "sources", "runs") | {"/sources/upload/", "/sources/pulls/"}
        paths |= {"/sources/reconciliation/", "/sources/reconciliation/reconciliation.csv"}
        if persona != "outsider":
            paths.add(f"/sources/runs/{run_id}/")
    if persona == "outsider":
        paths -= {
            "/tasks/code-review/",
            *(f"/tasks/code-review/{t}.csv" for t in ("trend", "teams", "people", "models")),
        }
    return paths


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_link_a_persona_is_shown_opens_for_them(as_persona, usage, people, persona):
    """Crawl from the overview, following every dashboard, people and sources link with its query string
    (links keep the page's filters): each must open. Downloads are opened, not crawled."""
    client = as_persona(persona)
    seen, queue = set(), ["/"]
    pattern = r'href="(/(?:teams|people|sources|models|tasks|facts)/[^"]*)"'
    while queue:
        path = queue.pop()
        response = client.get(path)
        assert response.status_code == 200, f"{persona} was shown a link to {path}"
        if response["Content-Type"].startswith("text/csv"):
            continue
        for link in re.findall(pattern, response.content.decode()):
            link = html.unescape(link)
            if link not in seen:
                seen.add(link)
                queue.append(link)
    run_id = IngestionRun.objects.get().pk
    assert {urlsplit(link).path for link in seen} == _shown_paths(persona, people, run_id)
