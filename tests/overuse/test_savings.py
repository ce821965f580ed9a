"""Savings equal a hand re-computation to the nano-dollar (prices in tests/overuse/conftest.py)."""

from decimal import ROUND_FLOOR, Decimal

import pytest

from apps.accounts.scoping import organisation_viewer
from apps.overuse.evaluation import base_evaluation
from apps.overuse.models import PromptObservation
from apps.overuse.savings import HIGH_CONFIDENCE
from apps.overuse.selectors import metadata_heuristic, overuse_report
from tests.overuse.conftest import (
    ALICE,
    DAY,
    GPT5,
    GPT5_COST,
    GPT5_SAVING,
    OPUS_PLAIN_COST,
    OPUS_REASONING_COST,
    OPUS_SAVING,
    Request,
)

pytestmark = pytest.mark.django_db


def labels(story) -> dict[str, str]:
    return dict(PromptObservation.objects.values_list("record_key", "label"))


def test_the_classifier_labels_the_story_as_written(story):
    assert labels(story) == {
        "a1": "trivial",
        "a2": "trivial",
        "a3": "trivial",
        "a4": "substantive",
        "a5": "trivial",
        "b1": "trivial",
        "b2": "trivial",
        "b3": "non_work",
        "c1": "trivial",
        "c2": "non_work",
    }


def test_routable_savings_reprice_each_request_on_the_cheaper_model(story, acme):
    report = overuse_report(organisation_viewer(acme), start=DAY, end=DAY)
    routable = {
        row.record_key: (counterfactual.target.model, counterfactual.saving_nanos)
        for row, counterfactual in report.routable
    }
    # a5 is trivial but on gpt-4.1-mini (standard tier): not routable. Opus's 100 reasoning tokens are
    # dropped on Haiku, which the rules file designates as not reasoning.
    assert routable == {
        "a1": ("gpt-5-nano", GPT5_SAVING),
        "a2": ("gpt-5-nano", GPT5_SAVING),
        "a3": ("gpt-5-nano", GPT5_SAVING),
        "c1": ("gpt-5-nano", GPT5_SAVING),
        "b1": ("claude-haiku-4-5", OPUS_SAVING),
        "b2": ("claude-haiku-4-5", OPUS_SAVING),
    }
    totals = report.routable_totals
    assert totals.requests == 6
    assert totals.cost_nanos == 4 * GPT5_COST + 2 * OPUS_REASONING_COST == 77_700_000
    assert totals.high_nanos == 4 * 1_944_000 + 2 * 32_980_000 == 73_736_000


def test_the_low_end_counts_confident_flags_discounted_by_the_precision_bound(story, acme):
    report = overuse_report(organisation_viewer(acme), start=DAY, end=DAY)
    scores = dict(PromptObservation.objects.values_list("record_key", "score"))
    saving = {"a1": GPT5_SAVING, "a2": GPT5_SAVING, "a3": GPT5_SAVING, "c1": GPT5_SAVING}
    saving |= {"b1": OPUS_SAVING, "b2": OPUS_SAVING}
    confident = sum(value for key, value in saving.items() if scores[key] >= HIGH_CONFIDENCE)
    bound = base_evaluation().flag_precision_low
    assert bound == Decimal("0.9591")  # Wilson lower bound of 243/247 (test_classifier pins the counts)
    expected = int((Decimal(confident) * bound).to_integral_value(rounding=ROUND_FLOOR))
    assert report.routable_low_nanos == expected
    assert 0 < report.routable_low_nanos <= report.routable_totals.high_nanos


def test_non_work_spend_is_avoidable_and_reported_apart_from_routable(story, acme):
    report = overuse_report(organisation_viewer(acme), start=DAY, end=DAY)
    assert report.avoidable_nanos == OPUS_PLAIN_COST + GPT5_COST == 21_825_000
    assert report.non_work_requests == 2
    assert {row.record_key for row in report.non_work}.isdisjoint(
        {row.record_key for row, _ in report.routable}
    )


def test_totals_per_month_team_and_model(story, acme):
    report = overuse_report(organisation_viewer(acme), start=DAY, end=DAY)
    by_month = report.savings_by("month")
    assert [
        (g.group.key, g.routable_requests, g.routable_high_nanos, g.avoidable_nanos) for g in by_month
    ] == [("2026-08", 6, 73_736_000, 21_825_000)]
    by_team = {g.group.key: (g.routable_high_nanos, g.avoidable_nanos) for g in report.savings_by("team")}
    assert by_team == {
        "payments": (2 * OPUS_SAVING, OPUS_PLAIN_COST),
        "platform": (3 * GPT5_SAVING, 0),
        "emea": (GPT5_SAVING, GPT5_COST),
    }
    by_model = {
        g.group.key: (g.routable_requests, g.routable_high_nanos, g.avoidable_nanos)
        for g in report.savings_by("model")
    }
    assert by_model == {
        "anthropic/claude-opus-4-1-20250805": (2, 2 * OPUS_SAVING, OPUS_PLAIN_COST),
        "openai/gpt-5-2025-08-07": (4, 4 * GPT5_SAVING, GPT5_COST),
    }
    assert sum(g.routable_low_nanos for g in by_month) == report.routable_low_nanos


def test_not_trivial_feedback_takes_the_request_out_of_the_findings(story, acme):
    from django.contrib.auth import get_user_model

    from apps.overuse.services import feedback_not_trivial

    viewer = organisation_viewer(acme)
    observation = PromptObservation.objects.get(record_key="b1")
    user = get_user_model().objects.create_user(username="cio", email="cio@acme.example", password="x")
    feedback = feedback_not_trivial(viewer=viewer, user=user, observation_id=observation.pk)
    assert (feedback.original_label, feedback.corrected_label, feedback.text) == (
        "trivial",
        "substantive",
        observation.excerpt,
    )
    again = feedback_not_trivial(viewer=viewer, user=user, observation_id=observation.pk)
    assert again.pk == feedback.pk  # once per request
    report = overuse_report(viewer, start=DAY, end=DAY)
    assert report.routable_totals.high_nanos == 73_736_000 - OPUS_SAVING


def test_requests_without_prompt_text_get_only_the_labelled_metadata_heuristic(ingest_requests, acme):
    # 50 in, 20 out on gpt-5: $0.0000625 + $0.0002 = 262,500 nanos; on gpt-5-nano 2,500 + 8,000 = 10,500.
    tiny = [
        Request(f"t{i}", ALICE, GPT5, None, prompt_tokens=50, cached_tokens=0, completion_tokens=20)
        for i in range(3)
    ]
    big = Request("big", ALICE, GPT5, None)  # 1,000 in / 100 out: not tiny
    # Tiny too, but its prompt was logged: the classifier decides (substantive), not the heuristic.
    typed = Request(
        "typed",
        ALICE,
        GPT5,
        "SQL for churn by cohort?",
        prompt_tokens=50,
        cached_tokens=0,
        completion_tokens=20,
    )
    ingest_requests([*tiny, big, typed])
    groups = metadata_heuristic(organisation_viewer(acme), start=DAY, end=DAY)
    assert [(g.group.key, g.requests, g.cost_nanos, g.saving_nanos) for g in groups] == [
        ("platform", 3, 3 * 262_500, 3 * (262_500 - 10_500))
    ]
    assert overuse_report(organisation_viewer(acme), start=DAY, end=DAY).routable == []


def test_a_negotiated_discount_applies_to_both_sides_of_the_saving(acme, ingest_requests):
    """20% off OpenAI: gpt-5 costs 0.8 x $0.002025 = $0.00162 net, gpt-5-nano 0.8 x $0.000081 = $0.0000648,
    so each routed greeting saves $0.0015552 (0.8 x the list saving), not $0.00162 - $0.000081."""
    import datetime as dt

    from apps.catalog.models import OverrideKind, PriceOverride
    from apps.catalog.services import provider_for
    from tests.overuse.conftest import STORY

    PriceOverride.objects.create(
        organisation=acme, kind=OverrideKind.DISCOUNT, provider=provider_for("openai"), percent=Decimal(20),
        valid_from=dt.date(2026, 1, 1),
    )  # fmt: skip
    ingest_requests(STORY)

    report = overuse_report(organisation_viewer(acme), start=DAY, end=DAY)
    routable = {
        row.record_key: (row.cost_nanos, cf.target_cost_nanos, cf.saving_nanos) for row, cf in report.routable
    }
    assert GPT5_SAVING == 1_944_000
    for key in ("a1", "a2", "a3", "c1"):
        assert routable[key] == (1_620_000, 64_800, 1_555_200)
    assert routable["b1"][2] == routable["b2"][2] == OPUS_SAVING  # Anthropic is not discounted
    assert report.routable_totals.high_nanos == 4 * 1_555_200 + 2 * OPUS_SAVING == 72_180_800
