"""Who may see what: named people with different rights; out of scope answers 404 (TESTPLAN F2-F5)."""

import json
import re

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.scoping import ScopeMissing, scope_usage
from apps.usage.models import DailyRollup
from tests.conftest import litellm_record, write_jsonl


@pytest.fixture
def usage(ingest, people, tmp_path):
    """Today: alice 3 requests, bob 2, carol 1, and 1 from an unknown gateway user (unattributed)."""
    now = timezone.now().replace(microsecond=0).isoformat()
    records = [
        *(litellm_record(f"a{i}", user="alice@acme.example", startTime=now) for i in range(3)),
        *(litellm_record(f"b{i}", user="bob@acme.example", startTime=now) for i in range(2)),
        litellm_record("c0", user="carol@acme.example", startTime=now),
        litellm_record("u0", user="stranger@elsewhere.example", startTime=now),
    ]
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "today.jsonl", records))


ONE = 500_000  # nano-dollars per test request (gpt-4.1-mini, 800 uncached + 200 cached + 100 output)


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
    assert response.context["total_nanos"] == 3 * ONE
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


@pytest.mark.parametrize("persona", ["cio", "finops", "eng_manager", "platform_manager", "alice", "outsider"])
def test_every_link_a_persona_is_shown_opens_for_them(as_persona, usage, persona):
    client = as_persona(persona)
    seen, queue = set(), ["/"]
    while queue:
        path = queue.pop()
        response = client.get(path)
        assert response.status_code == 200, f"{persona} was shown a link to {path}"
        for link in re.findall(r'href="(/(?:teams|people|sources)/[^"]+)"', response.content.decode()):
            if link not in seen:
                seen.add(link)
                queue.append(link)
    # CIO/FinOps: 3 teams with usage, their 3 people, the uploads page and the run; the Engineering
    # manager: Platform, Payments, alice, bob. Another organisation's CIO: only their own uploads page.
    expected_links = {
        "cio": 8,
        "finops": 8,
        "eng_manager": 4,
        "platform_manager": 2,
        "alice": 0,
        "outsider": 1,
    }
    assert len(seen) == expected_links[persona], sorted(seen)
