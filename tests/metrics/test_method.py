"""The before/after comparison: difference in differences with a Welch t interval, matched comparison teams,
and suppression of groups too small to say anything (TESTPLAN-style exact numbers, computed by hand).

The constructed case: the comparison team's values follow a trend; the treated team runs 1 above and 1
below it in turn before the adoption date, and 10 higher after it, with the same alternation:
    gaps before = [1, -1, 1, -1]  mean 0, sample variance 4/3
    gaps after  = [11, 9, 11, 9]  mean 10, sample variance 4/3
    estimate = 10 - 0 = 10; standard error = sqrt(4/3/4 + 4/3/4) = sqrt(2/3) = 0.8164966
    Welch degrees of freedom = (1/3 + 1/3)^2 / ((1/3)^2/3 + (1/3)^2/3) = 6
    t(0.975, 6) = 2.4469119 (tables); half width = 1.9978952; interval 8.0021048 .. 11.9978952
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from apps.accounts.scoping import organisation_viewer
from apps.metrics import method, selectors
from apps.metrics.method import Series, Settings, Suppressed, compare, difference_in_differences
from apps.metrics.periods import period_end
from tests.metrics.conftest import ADOPTED, MONDAYS, WIGGLE

ENDS = {monday: period_end(monday, "week") for monday in MONDAYS}
HALF_WIDTH = 2.4469118511449692 * math.sqrt(2 / 3)


def comparison_values(level: float = 40.0, step: float = 0.5) -> dict[dt.date, float]:
    return {monday: level + step * i for i, monday in enumerate(MONDAYS)}


def treated_values(base: dict[dt.date, float], lift: float = 10.0) -> dict[dt.date, float]:
    return {
        m: v + WIGGLE[i] + (lift if m >= ADOPTED else 0.0) for i, (m, v) in enumerate(sorted(base.items()))
    }


def test_the_estimate_and_its_interval_match_the_hand_computation():
    estimate, low, high, error, degrees = difference_in_differences([1, -1, 1, -1], [11, 9, 11, 9])

    assert estimate == 10
    assert error == pytest.approx(math.sqrt(2 / 3), abs=1e-12)
    assert degrees == pytest.approx(6, abs=1e-12)
    assert (low, high) == (pytest.approx(8.0021048, abs=1e-7), pytest.approx(11.9978952, abs=1e-7))


def test_no_spread_collapses_the_interval_onto_the_estimate():
    assert difference_in_differences([2, 2, 2], [5, 5, 5]) == (3, 3, 3, 0.0, math.inf)


def test_compare_finds_the_known_change_against_the_matched_team():
    control = comparison_values()
    result = compare(
        Series("Treated", treated_values(control), 12, ADOPTED),
        [
            Series("Similar", control, 10),
            Series("Three times the level", {m: 3 * v for m, v in control.items()}, 10),
            Series("Adopted too", control, 10, adopted_on=MONDAYS[5]),
            Series("Too small", control, 4),
        ],
        period_end=ENDS,
    )

    assert isinstance(result, method.Estimate)
    assert [match.name for match in result.matches] == ["Similar"]
    assert result.effect == pytest.approx(10, abs=1e-12)
    assert (result.low, result.high) == (pytest.approx(10 - HALF_WIDTH), pytest.approx(10 + HALF_WIDTH))
    assert result.sign == 1
    assert (len(result.before), len(result.after)) == (4, 4)
    assert result.relative == pytest.approx(10 / (sum(control[m] for m in MONDAYS[:4]) / 4))


def test_a_team_without_a_change_shows_an_interval_that_includes_zero():
    control = comparison_values()
    result = compare(
        Series("Flat", treated_values(control, lift=0.0), 12, ADOPTED),
        [Series("Similar", control, 10)],
        period_end=ENDS,
    )

    assert result.effect == pytest.approx(0, abs=1e-12)
    assert result.sign == 0
    assert method.verdict(result, higher_is_better=True) == (
        "No clear difference from the comparison teams: the interval includes zero."
    )
    assert method.did_not_improve(result, higher_is_better=True) is True


def test_lower_is_better_reads_a_fall_as_the_better_direction():
    control = comparison_values()
    result = compare(
        Series("T", treated_values(control, lift=-10.0), 12, ADOPTED),
        [Series("C", control, 10)],
        period_end=ENDS,
    )

    assert result.sign == -1
    assert method.did_not_improve(result, higher_is_better=False) is False
    assert "the better direction" in method.verdict(result, higher_is_better=False)


@pytest.mark.parametrize(
    ("treated", "candidates", "reason"),
    [
        (Series("T", {}, 12, None), [], "no adoption date is recorded for this team"),
        (
            Series("T", treated_values(comparison_values()), 4, ADOPTED),
            [],
            "the team has fewer than 5 people",
        ),
        (
            Series(
                "T",
                {m: v for m, v in treated_values(comparison_values()).items() if m < MONDAYS[7]},
                12,
                ADOPTED,
            ),
            [Series("C", comparison_values(), 10)],
            "fewer than 4 weeks of values before or after the adoption date (4 before, 3 after)",
        ),
        (
            Series("T", treated_values(comparison_values()), 12, ADOPTED),
            [Series("C", comparison_values(), 4)],
            "no comparison team without AI adoption had a similar level and trend before the adoption date "
            "(at least 5 people and 4 weeks each side)",
        ),
        (
            Series("T", treated_values(comparison_values()), 12, ADOPTED),
            [Series("Steeper", comparison_values(step=8.0), 10)],
            "no comparison team without AI adoption had a similar level and trend before the adoption date "
            "(at least 5 people and 4 weeks each side)",
        ),
    ],
)
def test_small_or_unmatched_groups_are_suppressed_with_the_reason(treated, candidates, reason):
    assert compare(treated, candidates, period_end=ENDS, noun="week") == Suppressed(reason)


def test_the_minimums_are_settings():
    treated = Series("T", treated_values(comparison_values()), 3, ADOPTED)
    candidates = [Series("C", comparison_values(), 3)]

    assert isinstance(compare(treated, candidates, period_end=ENDS), Suppressed)
    estimate = compare(treated, candidates, period_end=ENDS, settings=Settings(min_people=3))
    assert estimate.effect == pytest.approx(10)


# --- the same through the database: per-person values, adoption dates, the viewer's scope -----------------


def test_the_comparison_selector_estimates_per_person_with_the_interval(acme, engineering_story, prs_merged):
    result = selectors.comparison(organisation_viewer(acme), prs_merged, engineering_story["platform"])

    estimate = result.estimate
    assert [match.name for match in estimate.matches] == ["Payments"]
    assert estimate.effect == pytest.approx(0.5, abs=1e-9)
    assert (estimate.low, estimate.high) == (
        pytest.approx(0.5 - HALF_WIDTH / 2, abs=1e-9),
        pytest.approx(0.5 + HALF_WIDTH / 2, abs=1e-9),
    )
    assert result.unit_text == "PRs per person per week"
    assert result.label == "observational — not proof of cause"


def test_a_parent_team_is_never_its_sub_teams_comparison(acme, engineering_story, prs_merged, put_values):
    # Engineering (all 11 people) runs exactly like Payments per person: a perfect match, were it not
    # the team Platform belongs to.
    rows = [
        ("engineering", m.isoformat(), (Decimal("2.0") + Decimal("0.1") * i) * 11)
        for i, m in enumerate(MONDAYS)
    ]
    assert put_values(prs_merged, rows).rejected == 0

    result = selectors.comparison(organisation_viewer(acme), prs_merged, engineering_story["platform"])

    assert [match.name for match in result.estimate.matches] == ["Payments"]


def test_a_manager_of_one_team_gets_no_comparison_from_teams_they_cannot_see(
    client, acme, engineering_story, prs_merged
):
    from apps.accounts.models import Role
    from apps.accounts.scoping import Viewer

    platform = engineering_story["platform"]
    viewer = Viewer(acme.pk, Role.MANAGER, frozenset({platform.pk}), None)

    result = selectors.comparison(viewer, prs_merged, platform)

    assert result.estimate is None
    assert result.result.reason.endswith("; only teams you can see are compared")


def test_weeks_with_few_active_people_hide_spend_per_person(acme, teams, people, crowd, spend):
    platform = teams["platform"]
    four = [people["alice"], *crowd(platform, 3)]
    five = [*four, *crowd(platform, 1)]
    for person in four:
        spend(dt.date(2026, 8, 4), "2.00", person=person)  # W32: 4 active people
    for person in five:
        spend(dt.date(2026, 8, 11), "3.00", person=person)  # W33: 5 active people
    spend(dt.date(2026, 8, 11), "1.00", team=platform)  # a shared key: counted, nobody's

    weeks = selectors.adoption_weeks(
        organisation_viewer(acme), platform, start=dt.date(2026, 8, 3), end=dt.date(2026, 8, 16)
    )

    assert [(w.active_people, w.spend_nanos, w.spend_per_active_nanos) for w in weeks] == [
        (4, 8_000_000_000, None),
        (5, 16_000_000_000, 3_200_000_000),  # $16 / 5
    ]


def test_heavy_spenders_are_measured_against_the_team_median(acme, teams, people, crowd, spend):
    platform = teams["platform"]
    everyone = [people["alice"], *crowd(platform, 5)]
    for person in everyone[:5]:
        spend(dt.date(2026, 8, 4), "1.00", person=person)
    spend(dt.date(2026, 8, 4), "10.00", person=everyone[5])  # median of [1,1,1,1,1,10] = 1

    heavy = selectors.heavy_spenders(
        organisation_viewer(acme), platform, start=dt.date(2026, 8, 3), end=dt.date(2026, 8, 9)
    )

    assert (heavy.suppressed, heavy.median_nanos, heavy.active_people) == (False, 1_000_000_000, 6)
    assert [(p.name, p.spend_nanos, p.times_median) for p in heavy.people] == [
        (everyone[5].name, 10_000_000_000, Decimal(10))
    ]

    few = selectors.heavy_spenders(
        organisation_viewer(acme), teams["payments"], start=dt.date(2026, 8, 3), end=dt.date(2026, 8, 9)
    )
    assert few.suppressed and few.people == []
