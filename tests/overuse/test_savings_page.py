"""The Savings page for people with different rights (TESTPLAN F2-F4, H8): scope, aggregates, excerpts."""

import datetime as dt

import pytest
from django.utils import timezone

from apps.accounts.scoping import organisation_viewer, viewer_for_user
from apps.overuse.models import ExcerptView, LabelFeedback, PromptObservation, PromptStorage
from apps.overuse.selectors import AggregateOnly, overuse_report
from apps.overuse.services import policy_set
from tests.overuse.conftest import STORY

pytestmark = pytest.mark.django_db

NON_WORK_TEXTS = ("weather in Lisbon", "banana bread")


@pytest.fixture
def today_story(ingest_requests):
    now = timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)
    return ingest_requests(STORY, at=now)


def page(client):
    response = client.get("/savings/")
    assert response.status_code == 200
    return response


def test_the_cio_sees_the_organisation_and_every_excerpt_shown_is_logged(as_persona, today_story, acme):
    client = as_persona("cio")
    response = page(client)
    today = timezone.now().date()
    expected = overuse_report(organisation_viewer(acme), start=today - dt.timedelta(days=29), end=today)
    assert response.context["routable"].high_nanos == expected.routable_totals.high_nanos == 73_736_000
    assert response.context["avoidable_nanos"] == 21_825_000
    assert {item.group.key for item in response.context["by_team"]} == {"platform", "payments", "emea"}
    shown = [example.observation.record_key for example in response.context["examples"]]
    assert sorted(shown) == ["a1", "a2", "a3", "b1", "b2", "c1"]
    views = ExcerptView.objects.filter(viewed_by__email="cio@acme.example")
    assert sorted(views.values_list("observation__record_key", flat=True)) == sorted(shown)
    html = response.content.decode()
    assert "how&#x27;s it going?" in html
    for text in NON_WORK_TEXTS:
        assert text not in html  # non-work prompts are never shown, not even to the CIO


def test_a_manager_sees_only_their_teams_and_non_work_only_as_aggregates(as_persona, today_story):
    client = as_persona("eng_manager")
    response = page(client)
    assert {item.group.key for item in response.context["by_team"]} == {"platform", "payments"}
    assert response.context["routable"].high_nanos == 3 * 1_944_000 + 2 * 32_980_000
    assert [(g.group.key, g.requests, g.people) for g in response.context["non_work_by_team"]] == [
        ("payments", 1, 1)
    ]
    assert response.context["examples"] == []  # default policy: CIO and FinOps read excerpts
    assert ExcerptView.objects.count() == 0
    html = response.content.decode()
    for text in (*NON_WORK_TEXTS, "how&#x27;s it going?"):
        assert text not in html
    report = overuse_report(
        viewer_for_user(response.wsgi_request.user), start=timezone.now().date(), end=timezone.now().date()
    )
    with pytest.raises(AggregateOnly):
        report.non_work_by("person")
    with pytest.raises(AggregateOnly):
        report.savings_by("person")


def test_a_sub_team_manager_sees_neither_parent_nor_siblings(as_persona, today_story):
    response = page(as_persona("platform_manager"))
    assert [(item.group.key, item.requests) for item in response.context["by_team"]] == [("platform", 3)]
    assert response.context["avoidable_nanos"] == 0


def test_when_managers_may_read_excerpts_they_read_only_their_teams_and_never_non_work(
    as_persona, today_story, acme
):
    policy_set(organisation_id=acme.pk, excerpt_roles=["cio", "finops", "manager"])
    response = page(as_persona("eng_manager"))
    shown = sorted(example.observation.record_key for example in response.context["examples"])
    assert shown == ["a1", "a2", "a3", "b1", "b2"]
    assert ExcerptView.objects.count() == 5


def test_a_member_sees_their_own_requests_only(as_persona, today_story):
    response = page(as_persona("alice"))
    assert [(item.group.key, item.requests) for item in response.context["by_team"]] == [("platform", 3)]
    assert response.context["examples"] == []
    assert response.context["avoidable_nanos"] == 0


def test_under_the_none_policy_the_page_shows_no_text(as_persona, today_story, acme):
    policy_set(organisation_id=acme.pk, prompt_storage=PromptStorage.NONE)
    response = page(as_persona("cio"))
    assert response.context["examples"] == []
    assert response.context["routable"].high_nanos == 73_736_000  # labels still count (H7)
    assert "stores no prompt text" in response.content.decode()


def test_not_trivial_feedback_is_stored_and_scoped(as_persona, today_story, acme):
    b1 = PromptObservation.objects.get(record_key="b1")
    url = f"/savings/feedback/{b1.pk}/not-trivial/"
    manager = as_persona("platform_manager")
    assert manager.post(url).status_code == 404  # Payments is not theirs
    assert manager.get(url).status_code == 405
    cio = as_persona("cio")
    response = cio.post(url)
    assert response.status_code == 302 and response["Location"] == "/savings/"
    feedback = LabelFeedback.objects.get()
    assert (feedback.record_key, feedback.corrected_label, feedback.given_by.email) == (
        "b1",
        "substantive",
        "cio@acme.example",
    )
    assert page(cio).context["routable"].high_nanos == 73_736_000 - 32_980_000


def test_another_organisation_sees_nothing_of_ours(as_persona, today_story):
    client = as_persona("outsider")
    response = page(client)
    assert response.context["by_team"] == [] and response.context["avoidable_nanos"] == 0
    b1 = PromptObservation.objects.get(record_key="b1")
    assert client.post(f"/savings/feedback/{b1.pk}/not-trivial/").status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/savings/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
