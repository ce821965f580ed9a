"""The dashboard pages show the ledger's numbers: equal to `manage.py spend` and apps.usage.selectors.spend
for the same filters, to the nano-dollar, whichever rollup a question is answered from.

The organisation is the demo's (Northwind Trading, 90 days to 20 Nov 2026, London time) at a small scale.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict

import pytest
from django.core.management import call_command
from django.db.models import Sum

from apps.accounts.models import Membership
from apps.accounts.scoping import ScopeMissing, organisation_viewer, subtree_team_ids, viewer_for_user
from apps.catalog.models import AIModel, Provider
from apps.dashboards import selectors
from apps.dashboards.filters import Filters
from apps.dashboards.models import DayPerson, DayPersonModel, DayPersonTask, DayTeamModel, DayTeamTask
from apps.org.models import Person, Task, Team
from apps.usage.models import DailyRollup
from apps.usage.selectors import daily_spend, spend
from tests.dashboards.conftest import DEMO_TODAY
from tests.dashboards.helpers import by_label, card, column, csv_rows, nanos, table

START, END = dt.date(2026, 8, 23), DEMO_TODAY  # the demo's 90 days: Sep and Oct are whole months
PERIOD = f"start={START}&end={END}"
CIO = "cio@northwind.example"
MEMBER = "dana.kowalski@northwind.example"  # Platform
MANAGER = "priya.natarajan@northwind.example"  # Engineering and the teams below it


@pytest.fixture
def northwind(demo, client):
    def login(email: str):
        user = Membership.objects.get(user__email=email).user
        client.force_login(user)
        return client, viewer_for_user(user)

    return login


def period(**values) -> Filters:
    return Filters(start=START, end=END, today=END, **values)


def by_object(groups) -> dict:
    """object id -> (cost, requests, unpriced rows), from ledger SpendGroups or dashboard Rows."""
    result = {}
    for group in groups:
        if hasattr(group, "totals"):
            result[group.object_id] = (
                group.totals.cost_nanos,
                group.totals.requests,
                group.totals.unpriced_rows,
            )
        else:
            result[group.object_id] = (group.cost_nanos, group.requests, group.unpriced_rows)
    return result


@pytest.mark.parametrize("dimension", ["team", "person", "task", "provider", "model"])
def test_every_grouping_equals_the_ledgers_spend_selector(northwind, dimension):
    _, viewer = northwind(CIO)
    ledger = spend(viewer, group_by=dimension, start=START, end=END)
    assert len(ledger) > 3 and sum(group.cost_nanos for group in ledger) > 1_000 * 10**9
    assert by_object(selectors.grouped(viewer, period(), by=dimension)) == by_object(ledger)


def test_top_people_read_from_months_and_edge_days_equal_the_ledger(northwind):
    _, viewer = northwind(CIO)
    ledger = [group for group in spend(viewer, group_by="person", start=START, end=END)]
    named = [group for group in ledger if group.object_id is not None]
    top = selectors.top_people(viewer, period(), limit=20)
    assert [row.object_id for row in top[:20]] == [group.object_id for group in named[:20]]
    assert by_object(top[:20]) == by_object(named[:20])
    assert top[-1].object_id is None  # the rows without a person come last, whatever their size
    assert by_object(top[-1:]) == by_object(group for group in ledger if group.object_id is None)
    everyone = selectors.top_people(viewer, period(), limit=None)
    assert by_object(everyone) == by_object(ledger)


def test_a_team_filter_covers_the_team_and_everything_below_it(northwind):
    _, viewer = northwind(CIO)
    engineering = Team.objects.get(slug="engineering", organisation__slug="northwind")
    subtree = subtree_team_ids(engineering.organisation_id, {engineering.pk})
    assert len(subtree) == 5
    filters = period(team=engineering, team_ids=subtree)
    for dimension in ("person", "model", "task"):
        ledger = spend(viewer, group_by=dimension, start=START, end=END, team_ids=subtree)
        assert by_object(selectors.grouped(viewer, filters, by=dimension)) == by_object(ledger), dimension
    assert by_object(selectors.top_people(viewer, filters, limit=None)) == by_object(
        spend(viewer, group_by="person", start=START, end=END, team_ids=subtree)
    )


def ledger_sums(group_by: str, **where) -> dict:
    """An independent answer: the full daily rollup summed with the ORM (object id -> cost, requests)."""
    rows = (
        DailyRollup.objects.filter(day__gte=START, day__lte=END, **where)
        .values(f"{group_by}_id")
        .annotate(cost=Sum("cost_nanos"), requests=Sum("requests"))
    )
    return {row[f"{group_by}_id"]: (row["cost"], row["requests"]) for row in rows}


def cost_and_requests(rows) -> dict:
    return {row.object_id: (row.totals.cost_nanos, row.totals.requests) for row in rows}


def test_provider_model_and_task_filters_equal_the_ledgers_rollup(northwind):
    _, viewer = northwind(CIO)
    anthropic = Provider.objects.get(slug="anthropic")
    opus = AIModel.objects.get(name="claude-opus-4-1-20250805")
    review = Task.objects.get(key="code-review", organisation__slug="northwind")
    cases = [
        (period(provider=anthropic), "team", {"provider_id": anthropic.pk}),
        (period(model=opus), "person", {"model_id": opus.pk}),
        (period(task=review), "model", {"task_id": review.pk}),  # crosses the narrow shapes
        (period(task=review), "team", {"task_id": review.pk}),
        (period(no_task=True), "team", {"task_id": None}),
        (
            period(provider=anthropic, task=review),
            "person",
            {"provider_id": anthropic.pk, "task_id": review.pk},
        ),
    ]
    for filters, group_by, where in cases:
        expected = ledger_sums(group_by, **where)
        assert expected, where
        assert cost_and_requests(selectors.grouped(viewer, filters, by=group_by)) == expected, where


def test_each_question_reads_the_narrowest_rollup_that_can_answer_it(northwind):
    _, cio = northwind(CIO)
    _, member = northwind(MEMBER)
    review = Task.objects.get(key="code-review", organisation__slug="northwind")
    assert selectors.rollup_for(cio, period(), {"model"}) is DayTeamModel
    assert selectors.rollup_for(cio, period(task=review), {"team"}) is DayTeamTask
    assert selectors.rollup_for(cio, period(task=review), {"model"}) is DailyRollup  # crosses the shapes
    # A member's rows are found by person: their questions are person questions.
    assert selectors.rollup_for(member, period(), {"model"}) is DayPersonModel
    assert selectors.rollup_for(member, period(), {"task"}) is DayPersonTask
    assert selectors.rollup_for(member, period(), {"team"}) is DayPerson


def test_daily_totals_equal_the_ledgers_daily_spend(northwind):
    _, viewer = northwind(CIO)
    ledger = defaultdict(int)
    for point in daily_spend(viewer, series="provider", start=START, end=END):
        ledger[point.day] += point.cost_nanos
    assert {row.day: row.cost_nanos for row in selectors.daily(viewer, period())} == dict(ledger)
    assert len(ledger) == 90


def test_a_stacked_chart_keeps_the_top_series_and_sums_the_rest_per_day(northwind):
    _, viewer = northwind(CIO)
    rows = selectors.daily_top(viewer, period(), by="team", top=3)
    every_day = {row.day: row.cost_nanos for row in selectors.daily(viewer, period())}
    per_day = defaultdict(int)
    for row in rows:
        per_day[row.day] += row.cost_nanos
    assert dict(per_day) == every_day  # nothing lost, nothing counted twice
    groups = selectors.grouped(viewer, period(), by="team")
    others = {row.label for row in rows if row.extra.get("other")}
    assert {row.label for row in rows} - others == {group.label for group in groups[:3]}
    assert others == {f"Other ({len(groups) - 3} more)"}


def test_the_teams_page_and_its_csv_equal_the_spend_command(northwind, capsys):
    client, viewer = northwind(CIO)
    call_command("spend", "--by", "team", "--start", str(START), "--end", str(END))
    command = {group["key"]: group["cost_usd"] for group in json.loads(capsys.readouterr().out)}
    response = client.get(f"/teams/?{PERIOD}")
    assert response.status_code == 200
    rows = csv_rows(client.get(f"/teams/tree.csv?{PERIOD}"))
    shown = {row["key"] or None: row["own_cost_usd"] for row in rows if nanos(row["own_cost_usd"])}
    assert shown == {key: cost for key, cost in command.items() if nanos(cost)}
    total = sum(nanos(cost) for cost in command.values())
    assert card(response, "total-usd") == total
    tree = table(response, "tree")
    assert column(tree, "key") == [row["key"] for row in rows]
    assert sum(column(tree, "own_cost_usd")) == total


@pytest.mark.parametrize(
    ("path", "panel", "group_by"),
    [("/models/", "models", "model"), ("/tasks/", "tasks", "task"), ("/teams/", "people", "person")],
)
def test_each_pages_table_and_csv_equal_the_spend_command(northwind, capsys, path, panel, group_by):
    client, _ = northwind(CIO)
    call_command("spend", "--by", group_by, "--start", str(START), "--end", str(END))
    command = {group["key"]: group for group in json.loads(capsys.readouterr().out)}
    response = client.get(f"{path}?{PERIOD}")
    rows = csv_rows(client.get(f"{path}{panel}.csv?{PERIOD}"))
    if group_by == "person":  # the top 20 and the rows without a person
        assert len(rows) == 21 and rows[-1]["key"] == ""
    else:
        assert len(rows) == len(command)
    for row in rows:
        expected = command[row["key"] or None]
        assert row["cost_usd"] == expected["cost_usd"], row["key"]
        assert row["requests"] == ("" if expected["requests"] is None else str(expected["requests"]))
        assert int(row["unpriced_rows"]) == expected["unpriced_rows"]
    shown = table(response, panel)
    assert column(shown, "key") == [row["key"] for row in rows]
    assert [nanos(row["cost_usd"]) for row in rows] == column(shown, "cost_usd")
    if group_by != "person":
        assert card(response, "total-usd") == sum(nanos(group["cost_usd"]) for group in command.values())


def test_a_filter_in_the_url_changes_every_number_on_the_page(northwind):
    client, viewer = northwind(CIO)
    everything = card(client.get(f"/models/?{PERIOD}"), "total-usd")
    response = client.get(f"/models/?{PERIOD}&provider=anthropic&task=code-review")
    anthropic = Provider.objects.get(slug="anthropic")
    expected = ledger_sums("provider", provider_id=anthropic.pk, task__key="code-review")
    assert card(response, "total-usd") == expected[anthropic.pk][0] < everything
    assert card(response, "requests") == expected[anthropic.pk][1]
    assert {row.provider for row in response.context["page"].models} == {"anthropic"}
    # The filters survive in every link of the page: CSVs, drill-downs, the pages it links to.
    for panel in response.context["panels"]:
        assert "provider=anthropic" in panel.csv_url and "task=code-review" in panel.csv_url
        assert all("provider=anthropic" in row.drill for row in panel.table.rows if row.drill)
    narrowed = csv_rows(client.get(f"/models/models.csv?{PERIOD}&provider=anthropic&task=code-review"))
    assert sum(nanos(row["cost_usd"]) for row in narrowed) == expected[anthropic.pk][0]


def test_a_team_page_shows_its_subtree_and_its_people(northwind):
    client, viewer = northwind(MANAGER)
    engineering = Team.objects.get(slug="engineering", organisation__slug="northwind")
    subtree = subtree_team_ids(engineering.organisation_id, {engineering.pk})
    response = client.get(f"/teams/engineering/?{PERIOD}")
    ledger = spend(viewer, group_by="person", start=START, end=END, team_ids=subtree)
    assert card(response, "total-usd") == sum(group.cost_nanos for group in ledger)
    people = table(response, "people")
    assert dict(zip(column(people, "key"), column(people, "cost_usd"), strict=True)) == {
        group.key or "": group.cost_nanos for group in ledger
    }
    # The demo's heavy users: far above their team's median, all named on the page.
    heavy = [
        key for key, flag in zip(column(people, "key"), column(people, "heavy_user"), strict=True) if flag
    ]
    assert card(response, "heavy-users") == len(heavy) >= 3
    assert response.context["budgets"] == []  # the budget slot: no limit on Engineering in this load
    assert by_label(table(response, "sub-teams"), "cost_with_subteams_usd")["Engineering"] == card(
        response, "total-usd"
    )


def test_a_member_sees_their_own_models_and_tasks(northwind):
    client, viewer = northwind(MEMBER)
    dana = Person.objects.get(email=MEMBER)
    response = client.get(f"/models/?{PERIOD}")
    ledger = spend(viewer, group_by="model", start=START, end=END)
    assert ledger == spend(
        organisation_viewer(dana.organisation), group_by="model", start=START, end=END, person_id=dana.pk
    )
    assert card(response, "total-usd") == sum(group.cost_nanos for group in ledger) > 0
    assert by_object(model.row for model in response.context["page"].models) == by_object(ledger)
    person = client.get(f"/people/{dana.pk}/?{PERIOD}")
    assert card(person, "total-usd") == card(response, "total-usd")
    assert client.get(f"/teams/?{PERIOD}").status_code == 404


def test_cost_per_request_leaves_out_money_without_a_request_count(northwind):
    client, viewer = northwind(CIO)
    rows = DailyRollup.objects.filter(day__gte=START, day__lte=END)
    counted = rows.filter(requests__isnull=False).aggregate(cost=Sum("cost_nanos"), requests=Sum("requests"))
    uncounted = rows.filter(requests__isnull=True).aggregate(cost=Sum("cost_nanos"))["cost"]
    assert uncounted > 100 * 10**9  # the part of OpenAI's usage report the gateway logs do not explain
    quotient, remainder = divmod(counted["cost"], counted["requests"])
    expected = quotient + (
        2 * remainder > counted["requests"] or (2 * remainder == counted["requests"] and quotient % 2)
    )
    assert card(client.get(f"/models/?{PERIOD}"), "cost-per-request") == expected


def test_the_models_page_names_tiers_frontier_share_and_what_caching_saved(northwind):
    client, _ = northwind(CIO)
    response = client.get(f"/models/?{PERIOD}")
    models = {model.row.label: model for model in response.context["page"].models}
    assert models["claude-opus-4-1-20250805"].tier == "frontier"
    assert models["gpt-5-nano-2025-08-07"].tier == "small"
    assert models["acme-llm-2027"].cache_saved_nanos in (0, None)
    tiers = by_label(table(response, "tiers"), "cost_usd")
    assert sum(tiers.values()) == card(response, "total-usd")
    assert card(response, "frontier-share") == pytest.approx(tiers["Frontier"] / card(response, "total-usd"))
    # Sonnet 4.5: $3/MTok input, $0.30/MTok cache read: each token read from the cache saved 2,700 nano-dollars.
    sonnet = models["claude-sonnet-4-5-20250929"]
    assert sonnet.row.totals.cache_read_tokens > 0
    assert sonnet.cache_saved_nanos == sonnet.row.totals.cache_read_tokens * 2_700
    saved = [model.cache_saved_nanos for model in models.values() if model.cache_saved_nanos is not None]
    assert card(response, "cache-saved") == sum(saved)


def test_a_task_page_names_its_owning_teams_and_people(northwind):
    client, viewer = northwind(CIO)
    review = Task.objects.get(key="code-review", organisation__slug="northwind")
    response = client.get(f"/tasks/code-review/?{PERIOD}")
    teams = table(response, "teams")
    assert dict(zip(column(teams, "key"), column(teams, "cost_usd"), strict=True)) == {
        Team.objects.get(pk=pk).slug if pk else "": cost
        for pk, (cost, _) in ledger_sums("team", task_id=review.pk).items()
    }
    people = csv_rows(client.get(f"/tasks/code-review/people.csv?{PERIOD}"))
    expected = ledger_sums("person", task_id=review.pk)
    top = sorted(((cost, pk) for pk, (cost, _) in expected.items() if pk), reverse=True)[:20]
    assert [nanos(row["cost_usd"]) for row in people[:20]] == [cost for cost, _ in top]
    owners = csv_rows(client.get(f"/tasks/tasks.csv?{PERIOD}"))
    assert {row["key"]: row["top_team"] for row in owners}["code-review"] == max(
        (
            (cost, Team.objects.get(pk=pk).name)
            for pk, (cost, _) in ledger_sums("team", task_id=review.pk).items()
            if pk
        )
    )[1]


def test_pages_run_a_fixed_number_of_queries(northwind, django_assert_num_queries):
    client, _ = northwind(CIO)
    dana = Person.objects.get(email=MEMBER)
    # Session, user, the account policy (role, person still active), membership (viewer), organisation,
    # navigation; then the page's own reads.
    policy = 1
    expected = {
        f"/teams/?{PERIOD}": 18,
        f"/teams/engineering/?{PERIOD}": 26,  # one of them: does the organisation track business metrics?
        f"/people/{dana.pk}/?{PERIOD}": 16,
        f"/models/?{PERIOD}": 16,
        f"/tasks/?{PERIOD}": 16,
        f"/tasks/code-review/?{PERIOD}": 19,  # one of them: does the organisation track business metrics?
        "/sources/": 10,
        f"/facts/?{PERIOD}": 12,
        f"/teams/tree.csv?{PERIOD}": 7,
        f"/models/models.csv?{PERIOD}": 8,
    }
    for path, count in expected.items():
        with django_assert_num_queries(count + policy):
            assert client.get(path).status_code == 200, path


def test_the_query_count_does_not_grow_with_the_period(northwind):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client, _ = northwind(CIO)
    counts = {}
    for days in (7, 30, 80, 90, 366):
        with CaptureQueriesContext(connection) as queries:
            client.get(f"/teams/engineering/?start={END - dt.timedelta(days=days - 1)}&end={END}")
        counts[days] = len(queries)
    # Whole months (read from month x person) and the days around them are summed in one query.
    assert counts[7] == counts[30] == counts[80] == counts[90] == counts[366]


def test_downloads_are_formula_safe_exact_and_never_cached(northwind):
    client, _ = northwind(CIO)
    Team.objects.filter(slug="legal").update(name='=HYPERLINK("http://evil.example","x")')
    response = client.get(f"/teams/tree.csv?{PERIOD}")
    assert response["Content-Disposition"] == 'attachment; filename="teams-20260823-20261120-tree.csv"'
    assert response["Cache-Control"] == "no-store"
    rows = csv_rows(response)
    assert '\'=HYPERLINK("http://evil.example","x")' in [row["team"] for row in rows]
    assert all(len(row["own_cost_usd"].split(".")[1]) == 9 for row in rows)


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("start=2026-13-01", 400, "start: Enter a valid date."),
        ("start=2026-11-20&end=2026-11-01", 400, "The end date is before the start date."),
        ("start=2024-01-01&end=2026-11-20", 400, "Choose at most 366 days."),
        ("team=no-such-team", 404, None),
        ("provider=nobody", 404, None),
        ("model=openai/no-such-model", 404, None),
        ("task=no-such-task", 404, None),
    ],
)
def test_filters_that_cannot_be_read_are_named(northwind, query, status, message):
    client, _ = northwind(CIO)
    for path in ("/models/", "/models/models.csv", "/facts/"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == status, path
        if message:
            assert message in response.content.decode()


def test_a_table_a_page_does_not_have_is_404(northwind):
    client, _ = northwind(CIO)
    assert client.get("/models/people.csv").status_code == 404
    assert client.get("/sources/facts.csv").status_code == 404


def test_empty_pages_say_what_to_do_next(northwind):
    client, _ = northwind(CIO)
    response = client.get("/models/?start=2020-01-01&end=2020-01-31")
    assert response.status_code == 200
    assert card(response, "total-usd") == 0
    assert "Widen the dates or clear a filter" in response.content.decode()


def test_the_unattributed_drill_down_lists_rows_without_a_team(northwind):
    client, viewer = northwind(CIO)
    unattributed = table(client.get(f"/teams/?{PERIOD}"), "tree").rows[-1]
    assert unattributed.values[0] == "Unattributed" and "team=~none" in unattributed.drill
    facts = client.get(unattributed.drill).context["page"].facts
    assert facts and all(fact.team_id is None for fact in facts)


def test_filters_ignore_nothing_a_member_may_not_use(northwind):
    client, _ = northwind(MEMBER)
    assert client.get(f"/models/?{PERIOD}&team=platform").status_code == 404
    assert client.get(f"/facts/?{PERIOD}&person=~none").status_code == 200
    assert client.get(f"/facts/?{PERIOD}&person=~none").context["page"].facts == []


def test_selectors_fail_closed_without_a_viewer(db):
    with pytest.raises(ScopeMissing):
        selectors.grouped(None, period(), by="team")
    with pytest.raises(ScopeMissing):
        selectors.fact_page(None, period())
