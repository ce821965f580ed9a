"""From a chart or table row to the fact rows behind it: the same filters, the viewer's scope, page by page."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.db.models import Q

from apps.accounts.models import Membership
from apps.dashboards.selectors import PAGE_SIZE
from apps.org.models import Person, Team
from apps.usage.models import UsageFact
from tests.dashboards.conftest import DEMO_TODAY
from tests.dashboards.helpers import table

START = dt.date(2026, 8, 23)
PERIOD = f"start={START}&end={DEMO_TODAY}"


@pytest.fixture
def login(demo, client):
    def as_user(email: str):
        client.force_login(Membership.objects.get(user__email=email).user)
        return client

    return as_user


def all_pages(client, url: str) -> list[int]:
    """Every fact id the drill-down lists, following its "older rows" links."""
    ids, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.context["page"]
        assert len(page.facts) == PAGE_SIZE or not page.has_next
        ids += [fact.pk for fact in page.facts]
        pages += 1
        found = re.search(r'href="\?([^"]+)" rel="next"', response.content.decode())
        url = f"/facts/?{html.unescape(found.group(1))}" if found else None
    assert pages == max(1, -(-len(ids) // PAGE_SIZE))
    return ids


def newest_first(facts) -> list[int]:
    return list(facts.order_by("-day", "-ts", "-id").values_list("pk", flat=True))


def test_a_day_of_a_team_on_a_model_lists_exactly_its_fact_rows(login):
    client = login("cio@northwind.example")
    trend = table(client.get(f"/teams/platform/?{PERIOD}"), "trend")
    row = max(trend.rows, key=lambda row: row.values[2])  # the largest day x model of the chart
    assert "team=platform" in row.drill and "model=" in row.drill
    day = row.values[0]
    assert f"start={day}&end={day}" in row.drill
    platform = Team.objects.get(slug="platform", organisation__slug="northwind")
    expected = UsageFact.objects.filter(day=day, team=platform, model__name=row.values[1])
    listed = all_pages(client, row.drill)
    assert listed == newest_first(expected) and listed


def test_the_whole_period_pages_through_every_row_newest_first(login):
    client = login("cio@northwind.example")
    expected = newest_first(UsageFact.objects.filter(day__gte=START, day__lte=DEMO_TODAY))
    assert len(expected) > 20 * PAGE_SIZE
    first = client.get(f"/facts/?{PERIOD}").context["page"]
    assert [fact.pk for fact in first.facts] == expected[:PAGE_SIZE] and first.has_next
    last_page = -(-len(expected) // PAGE_SIZE)
    last = client.get(f"/facts/?{PERIOD}&page={last_page}").context["page"]
    assert [fact.pk for fact in last.facts] == expected[(last_page - 1) * PAGE_SIZE :] and not last.has_next
    beyond = client.get(f"/facts/?{PERIOD}&page={last_page + 1}")
    assert beyond.context["page"].facts == [] and "No fact rows match" in beyond.content.decode()
    assert client.get(f"/facts/?{PERIOD}&page=0").status_code == 400


def test_a_manager_drills_only_into_their_teams(login):
    client = login("priya.natarajan@northwind.example")
    engineering = Team.objects.get(slug="engineering", organisation__slug="northwind")
    subtree = [engineering.pk, *engineering.children.values_list("pk", flat=True)]
    expected = newest_first(UsageFact.objects.filter(day=DEMO_TODAY, team_id__in=subtree))
    assert all_pages(client, f"/facts/?start={DEMO_TODAY}&end={DEMO_TODAY}") == expected
    assert client.get(f"/facts/?{PERIOD}&team=sales").status_code == 404


def test_a_member_drills_only_into_their_own_rows(login):
    client = login("dana.kowalski@northwind.example")
    dana = Person.objects.get(email="dana.kowalski@northwind.example")
    expected = newest_first(UsageFact.objects.filter(day__gte=START, day__lte=DEMO_TODAY, person=dana))
    assert expected
    assert all_pages(client, f"/facts/?{PERIOD}") == expected
    colleague = Person.objects.filter(team=dana.team).exclude(pk=dana.pk).first()
    assert client.get(f"/facts/?{PERIOD}&person={colleague.pk}").status_code == 404


def test_rows_without_a_person_or_task_are_reachable(login):
    client = login("cio@northwind.example")
    listed = all_pages(client, f"/facts/?start={DEMO_TODAY}&end={DEMO_TODAY}&person=~none&task=~none")
    expected = newest_first(UsageFact.objects.filter(Q(day=DEMO_TODAY), person=None, task=None))
    assert listed == expected and listed
