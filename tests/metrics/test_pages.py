"""The ROI pages as people see them: the comparison is labelled observational and no text claims a cause;
heavy spenders in a team whose outcome did not move are called out; definitions and adoption dates."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from apps.audit.models import AuditEntry
from apps.metrics.models import Adoption, Metric
from tests.metrics.conftest import MONDAYS

WINDOW = f"start={MONDAYS[0]}&end={MONDAYS[-1] + dt.timedelta(days=6)}"
LABEL = "observational — not proof of cause"
# Words that would claim a cause. The label itself says "not proof of cause"; it is removed first.
CAUSAL = re.compile(
    r"\b(caus\w*|because of|due to|led to|leads to|lead to|drove|drives|driven by|impact\w*|thanks to|"
    r"result(ed|s)? (of|in|from)|attributable|boost\w*|effect of|made (it|them)|produced by)\b",
    re.IGNORECASE,
)


def page_text(response) -> str:
    html = response.content.decode()
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def assert_no_causal_claim(text: str) -> None:
    assert CAUSAL.findall(text.replace(LABEL, "")) == []


@pytest.fixture
def heavy_spender(acme, teams, spend):
    """Platform's six people: five spend $1.00 in the window, one $10.00 (10x the median)."""
    from apps.org.models import Person

    people = list(Person.objects.filter(team=teams["platform"]).order_by("email"))
    for person in people[:-1]:
        spend(MONDAYS[5], "1.00", person=person)
    spend(MONDAYS[5], "10.00", person=people[-1])
    return people[-1]


def test_the_comparison_is_shown_with_its_interval_and_label_and_no_causal_words(
    as_persona, engineering_story
):
    response = as_persona("cio").get(f"/metrics/prs-merged/?subject=platform&{WINDOW}")

    assert response.status_code == 200
    text = page_text(response)
    assert LABEL in text
    assert "+0.50 PRs per person per week" in text
    assert "95% interval: -0.50 to +1.50" in text  # 0.5 -/+ 2.4469 x 0.4082 = 0.9989, shown to 2 places
    assert "No clear difference from the comparison teams" in text
    assert_no_causal_claim(text)
    assert response.context["comparison"].estimate.matches[0].name == "Payments"


def test_a_suppressed_comparison_says_why_without_a_figure(as_persona, engineering_story):
    response = as_persona("cio").get(f"/metrics/prs-merged/?subject=payments&{WINDOW}")

    text = page_text(response)
    assert "No comparison shown: no adoption date is recorded for this team." in text
    assert_no_causal_claim(text)


def test_the_home_and_adoption_pages_make_no_causal_claim(as_persona, engineering_story):
    client = as_persona("finops")
    for page in (f"/metrics/?{WINDOW}", "/metrics/adoption/", "/metrics/upload/"):
        response = client.get(page)
        assert response.status_code == 200, page
        assert_no_causal_claim(page_text(response))
    assert LABEL in page_text(client.get(f"/metrics/?{WINDOW}"))


def test_heavy_spenders_are_called_out_when_the_outcome_did_not_move(
    as_persona, flat_engineering_story, heavy_spender
):
    response = as_persona("eng_manager").get(f"/metrics/prs-merged/?subject=platform&{WINDOW}")

    assert response.context["comparison"].did_not_improve is True
    assert response.context["token_maxing"] is True
    text = page_text(response)
    assert "Token maxing?" in text
    assert f"{heavy_spender.name} $10.00 10.00×" in text
    assert_no_causal_claim(text)


def test_heavy_spenders_in_a_team_whose_outcome_rose_are_listed_but_not_called_out(
    as_persona, acme, engineering_story, heavy_spender, prs_merged
):
    from apps.metrics.models import MetricValue

    # A clearer rise than the fixture's: +1.5 PRs per person per week after the adoption date.
    for value in MetricValue.objects.filter(team=engineering_story["platform"], period_start__gte=MONDAYS[4]):
        value.value += Decimal(6)
        value.save()
    response = as_persona("cio").get(f"/metrics/prs-merged/?subject=platform&{WINDOW}")

    assert response.context["comparison"].estimate.sign == 1
    assert response.context["token_maxing"] is False
    assert "Token maxing?" not in page_text(response)
    assert heavy_spender.name in page_text(response)


def test_finops_defines_and_edits_a_metric_and_it_is_audited(as_persona, acme):
    client = as_persona("finops")
    response = client.post(
        "/metrics/new/",
        {
            "key": "deals-closed",
            "name": "Deals closed",
            "unit": "deals",
            "direction": "higher",
            "aggregation": "sum",
            "value_per_unit": "2400",
            "scope": "team",
            "grain": "week",
        },
    )
    assert response.status_code == 302
    metric = Metric.objects.get(organisation=acme, key="deals-closed")
    assert metric.value_per_unit == Decimal("2400")

    edit = {
        "name": "Deals won",
        "unit": "deals",
        "direction": "higher",
        "aggregation": "sum",
        "value_per_unit": "2500",
    }
    assert client.post("/metrics/deals-closed/edit/", edit).status_code == 302
    metric.refresh_from_db()
    assert (metric.name, metric.value_per_unit, metric.grain) == ("Deals won", Decimal("2500"), "week")
    assert list(
        AuditEntry.objects.filter(object_type="metrics.metric")
        .values_list("action", flat=True)
        .order_by("pk")
    ) == [
        "metric.created",
        "metric.updated",
    ]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"key": "new"}, "key: &#x27;new&#x27; is reserved for a page name"),
        ({"aggregation": "mean"}, "value per unit: only for outcomes that add up and where higher is better"),
        ({"direction": "lower"}, "value per unit: only for outcomes that add up and where higher is better"),
    ],
)
def test_a_bad_definition_is_refused_with_the_field_named(as_persona, acme, fields, error):
    form = {"key": "csat", "name": "CSAT", "unit": "points", "direction": "higher", "aggregation": "sum",
            "value_per_unit": "3", "scope": "team", "grain": "week"} | fields  # fmt: skip
    response = as_persona("cio").post("/metrics/new/", form)

    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Metric.objects.filter(organisation=acme).exists()


def test_the_cio_records_and_clears_an_adoption_date(as_persona, teams):
    client = as_persona("cio")
    sales = teams["sales"]

    response = client.post(
        "/metrics/adoption/", {"team": sales.pk, "adopted_on": "2026-09-07", "note": "Sales assistant"}
    )
    assert response.status_code == 302
    assert Adoption.objects.get(team=sales).adopted_on == dt.date(2026, 9, 7)
    assert "7 Sep 2026" in client.get("/metrics/adoption/").content.decode()

    client.post("/metrics/adoption/", {"team": sales.pk, "adopted_on": ""})
    assert not Adoption.objects.filter(team=sales).exists()
    assert list(
        AuditEntry.objects.filter(action="metric.adoption_set").order_by("pk").values_list("after", flat=True)
    ) == [
        {"adopted_on": "2026-09-07", "note": "Sales assistant"},
        None,
    ]


def test_the_metric_page_runs_a_bounded_number_of_queries(
    as_persona, engineering_story, heavy_spender, django_assert_max_num_queries
):
    client = as_persona("cio")
    with django_assert_max_num_queries(40):
        assert client.get(f"/metrics/prs-merged/?subject=platform&{WINDOW}").status_code == 200
