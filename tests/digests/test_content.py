"""What each digest says: the numbers `manage.py spend` prints, to the cent; nothing of another team in a
manager's digest; no person in a CIO's; no prompt text anywhere; small groups hidden (TESTPLAN F11, I4)."""

from __future__ import annotations

import io
import re
from decimal import ROUND_HALF_EVEN, Decimal

import orjson
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import Role
from apps.accounts.scoping import viewer_for_user
from apps.digests import selectors, services
from apps.digests.models import DigestPreference
from apps.digests.selectors import OrganisationWeek
from apps.org.models import Team
from apps.overuse.models import PromptObservation
from apps.overuse.selectors import overuse_report
from tests.digests.conftest import CANARY, PLANTED, WEEK, html_part, make_user, text_part

pytestmark = pytest.mark.django_db


def spend_cli(by: str, week) -> list[dict]:
    out = io.StringIO()
    call_command(
        "spend",
        by=by,
        start=week.monday.isoformat(),
        end=week.sunday.isoformat(),
        organisation="acme",
        stdout=out,
    )
    return orjson.loads(out.getvalue())


def cents(cost_usd: str) -> str:
    """How the CLI's exact dollars read in a digest: to the cent, half to even (the dashboards' rule)."""
    return f"${Decimal(cost_usd).quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,.2f}"


def team_names() -> dict[str | None, str]:
    return {**dict(Team.objects.values_list("slug", "name")), None: "Unattributed"}


def digests_by_recipient(inbox) -> dict[str, tuple[str, str]]:
    return {message["To"]: (text_part(message), html_part(message)) for message in inbox.parsed()}


def test_the_cio_digest_shows_what_manage_py_spend_prints(acme, readers, weeks_of_usage, smtp_server):
    services.send_digests(organisation=acme, week=WEEK)
    text, html = digests_by_recipient(smtp_server)["cio@acme.example"]
    this_week, last_week = spend_cli("team", WEEK), spend_cli("team", WEEK.shifted(-1))
    month_ago = spend_cli("team", WEEK.shifted(-4))

    # The story's figures, by hand (tests/digests/conftest.py) ...
    assert sum(Decimal(row["cost_usd"]) for row in this_week) == Decimal("2.0493828")
    assert "Acme spent $2.05 this week." in text
    # ... and every figure of the digest equals the CLI's for the same week, to the cent.
    total = sum(Decimal(row["cost_usd"]) for row in this_week)
    assert f"- Last week: {cents(sum(Decimal(r['cost_usd']) for r in last_week))} (" in text
    assert f"- Same week a month ago: {cents(sum(Decimal(r['cost_usd']) for r in month_ago))} (" in text
    assert cents(total) == "$2.05"
    unattributed = next(row for row in this_week if row["key"] is None)
    assert f"- Unattributed (no team): {cents(unattributed['cost_usd'])}, 9.8% of the week's spend" in text
    names = team_names()
    before = {row["key"]: row["cost_usd"] for row in last_week}
    shown = re.findall(r"^- (.+?): (\$[\d,.]+) \(last week (\$[\d,.]+);", text, flags=re.MULTILINE)
    expected = [
        (names[row["key"]], cents(row["cost_usd"]), cents(before.get(row["key"], "0"))) for row in this_week
    ]
    assert shown[: len(expected)] == expected
    assert shown == [
        ("Payments", "$1.00", "$1.20"),
        ("Platform", "$0.80", "$0.40"),
        ("Unattributed", "$0.20", "$0.00"),
        ("EMEA", "$0.05", "$0.00"),
    ]
    # The HTML table carries the same numbers.
    for name, now, then in shown:
        assert re.search(
            rf">{re.escape(name)}</a></td>\s*<td[^>]*>{re.escape(now)}</td>\s*<td[^>]*>{re.escape(then)}<",
            html,
        )


def test_a_manager_digest_shows_their_teams_as_manage_py_spend_does(
    acme, readers, weeks_of_usage, smtp_server
):
    services.send_digests(organisation=acme, week=WEEK)
    text, _ = digests_by_recipient(smtp_server)["eng.lead@acme.example"]
    rows = {row["key"]: row["cost_usd"] for row in spend_cli("team", WEEK)}
    engineering = Decimal(rows["platform"]) + Decimal(rows["payments"])

    assert f"Your teams spent {cents(str(engineering))} this week." in text
    assert f"- Platform: {cents(rows['platform'])} (last week $0.40;" in text
    assert f"- Payments: {cents(rows['payments'])} (last week $1.20;" in text


def forbidden_for_platform(spend_rows: list[list[dict]]) -> set[str]:
    """Every other team's name, people and figures (this week and last)."""
    words = {"Payments", "EMEA", "Sales", "Engineering", "Unattributed", "Bob", "Carol", "Erin"}
    words |= {
        "bob@acme.example",
        "carol@acme.example",
        "erin@acme.example",
        "/teams/payments/",
        "/teams/emea/",
    }
    for rows in spend_rows:
        words |= {cents(row["cost_usd"]) for row in rows if row["key"] != "platform"}
        words.add(cents(str(sum(Decimal(row["cost_usd"]) for row in rows))))  # the organisation's total
    return words


def test_a_manager_digest_holds_nothing_of_another_team(
    acme, readers, weeks_of_usage, budgets, prompts, smtp_server
):
    services.send_digests(organisation=acme, week=WEEK)
    text, html = digests_by_recipient(smtp_server)["platform.lead@acme.example"]
    spend_rows = [spend_cli("team", WEEK), spend_cli("team", WEEK.shifted(-1))]
    forbidden = forbidden_for_platform(spend_rows)
    platform_figures = {
        cents(row["cost_usd"]) for rows in spend_rows for row in rows if row["key"] == "platform"
    }
    assert not forbidden & platform_figures  # else the check below could not tell them apart
    assert "- Platform: $1.55 (last week $0.40;" in text  # their own team is there

    for body in (text, html):
        leaked = sorted(word for word in forbidden if word in body)
        assert leaked == []
    assert f"/budgets/{budgets['payments'].pk}/" not in html
    # Alice reports to Pat, the Platform manager: she may be named to him.
    assert "At or above each person in Platform ($0.50 monthly): Alice" in text


def test_a_cio_digest_is_aggregates_only(acme, readers, weeks_of_usage, budgets, prompts, smtp_server):
    services.send_digests(organisation=acme, week=WEEK)
    for address in ("cio@acme.example", "finops@acme.example"):
        text, html = digests_by_recipient(smtp_server)[address]
        for body in (text, html):
            for person in (
                "Alice",
                "Bob",
                "Carol",
                "Pat",
                "Erin",
                "alice@",
                "bob@",
                "carol@",
                "pat@",
                "erin@",
            ):
                assert person not in body
        assert "At or above each person in Payments ($0.50 monthly): 1 person" in text


def test_no_digest_carries_prompt_text(acme, readers, weeks_of_usage, prompts, smtp_server):
    assert PromptObservation.objects.filter(excerpt__contains="BLUEHERON").count() == 2  # stored, per policy
    summary = services.send_digests(organisation=acme, week=WEEK)
    assert summary.sent == 6

    for _, content in smtp_server.messages:
        raw = content.decode()
        assert "BLUEHERON" not in raw and "canary-7731" not in raw
    for text, html in digests_by_recipient(smtp_server).values():
        for prompt in [CANARY, *(prompt for _, prompt in PLANTED.values())]:
            assert prompt not in text
            assert prompt not in html
    cio_text = digests_by_recipient(smtp_server)["cio@acme.example"][0]
    assert "- Frontier models on trivial prompts: 3 requests" in cio_text  # the findings are there


def test_figures_about_fewer_people_than_the_minimum_are_hidden(
    acme, readers, weeks_of_usage, budgets, prompts, smtp_server, settings
):
    settings.SPENDWATCH_DIGEST_MIN_GROUP_SIZE = 3
    services.send_digests(organisation=acme, week=WEEK)
    digests = digests_by_recipient(smtp_server)
    cio, _ = digests["cio@acme.example"]
    eng, _ = digests["eng.lead@acme.example"]

    # Each team's week comes from one person: hidden. The unattributed group names no one: shown.
    assert "- Platform: not shown (fewer than 3 people)" in cio
    assert "- Payments: not shown (fewer than 3 people)" in cio
    assert "- Unattributed: $0.20 (last week $0.00;" in cio
    assert "Acme spent $3.30 this week." in cio  # the total stays whole
    assert "$1.55" not in cio and "$1.50" not in cio
    assert "== Biggest movers ==\n- Unattributed: +$0.20, new; now $0.20" in cio
    # Non-work use by one person in Payments: neither the team line nor the total.
    assert "- Non-work use: 1 request\n" in cio
    assert "1 team not shown (fewer than 3 people)" in cio
    # Line managers still see their own reports by name; others only as a count that small groups hide.
    assert "At or above each person in Platform ($0.50 monthly): fewer than 3 people" in eng
    assert "At or above each person in Payments ($0.50 monthly): Bob" in eng
    # Members see all of their own usage.
    assert "You spent $1.55 this week." in digests["alice@acme.example"][0]


def test_a_member_digest_is_their_own_usage(acme, readers, weeks_of_usage, prompts, smtp_server):
    services.send_digests(organisation=acme, week=WEEK)
    text, html = digests_by_recipient(smtp_server)["alice@acme.example"]

    assert "You spent $1.55 this week." in text
    assert "- gpt-4.1-mini-2025-04-14: $0.80 (last week $0.40;" in text
    assert "- gpt-5-2025-08-07: $0.75 (last week $0.00;" in text
    assert f"/people/{readers['alice'].membership.person_id}/" in html
    for other in ("Platform", "Payments", "Bob", "Carol", "Savings opportunities"):
        assert other not in text


def test_a_member_gets_no_digest_until_they_opt_in(acme, readers, weeks_of_usage, smtp_server):
    services.preference_set(user=readers["bob"], subscribed=True, via="preferences page")
    DigestPreference.objects.filter(user=readers["cio"]).delete()
    services.send_digests(organisation=acme, week=WEEK)
    text, _ = digests_by_recipient(smtp_server)["bob@acme.example"]
    assert "You spent $1.00 this week." in text


def test_the_weeks_overuse_report_narrowed_per_recipient_equals_the_scoped_selector(
    acme, readers, weeks_of_usage, prompts
):
    context = OrganisationWeek(acme, WEEK)
    for name in ("platform_lead", "eng_lead", "sales_lead", "alice", "cio"):
        viewer = viewer_for_user(readers[name])
        narrowed = context.overuse_for(viewer)
        scoped = overuse_report(viewer, start=WEEK.monday, end=WEEK.sunday)
        assert sorted(row.record_key for row, _ in narrowed.routable) == sorted(
            row.record_key for row, _ in scoped.routable
        )
        assert sorted(row.record_key for row in narrowed.non_work) == sorted(
            row.record_key for row in scoped.non_work
        )
    platform = context.overuse_for(viewer_for_user(readers["platform_lead"]))
    assert sorted(row.record_key for row, _ in platform.routable) == ["p1", "p2"]


def fact_queries(acme) -> int:
    with CaptureQueriesContext(connection) as captured:
        summary = services.send_digests(organisation=acme, week=WEEK, dry_run=True)
    assert summary.files
    return sum('"usage_usagefact"' in query["sql"] for query in captured.captured_queries)


def test_digests_for_more_teams_read_the_fact_table_no_more(acme, teams, readers, weeks_of_usage, prompts):
    """DASH-6: spend comes from the rollups; the week's facts are read once per organisation."""
    six = fact_queries(acme)
    for slug in ("platform", "payments", "emea", "sales"):
        make_user(acme, f"{slug}.deputy@acme.example", Role.MANAGER, manages=[teams[slug]])
    ten = fact_queries(acme)
    assert six == ten == 1
    assert len(selectors.recipients(acme.pk)) == 10


@pytest.fixture
def prs_merged(acme, teams):
    """Pull requests merged per week, worth $150 each: Platform 4 + 6, Payments 3 + 2 (W31, W32)."""
    from django.utils import timezone

    from apps.metrics.models import Aggregation, Direction, Metric, MetricGrain, MetricScope, MetricValue

    metric = Metric.objects.create(
        organisation=acme,
        key="prs-merged",
        name="Pull requests merged",
        unit="PRs",
        direction=Direction.HIGHER,
        aggregation=Aggregation.SUM,
        grain=MetricGrain.WEEK,
        scope=MetricScope.TEAM,
        value_per_unit=Decimal("150"),
    )
    for team, values in (("platform", (4, 6)), ("payments", (3, 2))):
        for week, value in zip((WEEK.shifted(-1), WEEK), values, strict=True):
            MetricValue.objects.create(
                metric=metric,
                team=teams[team],
                period_start=week.monday,
                value=value,
                updated_at=timezone.now(),
            )
    return metric


def test_roi_highlights_set_outcomes_against_the_weeks_spend(
    acme, readers, weeks_of_usage, prs_merged, smtp_server
):
    services.send_digests(organisation=acme, week=WEEK)
    digests = digests_by_recipient(smtp_server)
    cio, _ = digests["cio@acme.example"]
    platform, _ = digests["platform.lead@acme.example"]
    sales, _ = digests["sales.lead@acme.example"]

    # Platform: 10 PRs against $0.40 + $0.80 of spend in those two weeks; worth 10 × $150 = $1,500.
    platform_line = "- Pull requests merged, Platform: 10 PRs for $1.20 of AI spend ($0.12 each); worth 1,250.0× the spend"
    # Payments: 5 PRs against $1.20 + $1.00; worth $750, 340.909…× the spend.
    payments_line = (
        "- Pull requests merged, Payments: 5 PRs for $2.20 of AI spend ($0.44 each); worth 340.9× the spend"
    )
    assert "== ROI highlights (the 12 weeks to 9 Aug 2026) ==" in cio
    assert f"{platform_line} <https://spendwatch.acme.example/metrics/prs-merged/>\n{payments_line}" in cio
    assert platform_line in platform and "Payments" not in platform
    assert "No business metric has figures for these weeks yet." in sales
    assert "ROI highlights" not in digests["alice@acme.example"][0]
