"""Re-attribution runs: a preview's numbers are the job's, to the nano-dollar; nothing is lost or doubled;
the rollups of the days touched follow (TESTPLAN A: conservation)."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.org import services
from apps.org.attribution import Owner, RuleBook
from apps.org.models import AttributionRun, AttributionRunStatus, Rule, Task
from apps.org.reattribution import PlanDrift, apply_plan, plan_reattribution
from apps.org.services import IdentityInput, RuleInput
from tests.conftest import write_jsonl
from tests.org.conftest import (
    BIG,
    ONE,
    TOTAL_NANOS,
    TOTAL_ROWS,
    count_sql,
    fact_totals,
    owner_of,
    record,
    rollup_totals,
)


def test_the_rule_preview_is_what_the_job_moves_to_the_nano_dollar(
    acme, teams, people, usage, finops, jobs_run_inline
):
    data = RuleInput(field="api_key_alias", pattern="^billing-", team_id=teams["payments"].pk)

    preview = services.rule_preview(finops, None, data)

    # k1, k2, k3 priced (ONE + ONE + BIG) and k4 unpriced: four rows, from unattributed to Payments.
    assert [(m.source, m.target, m.rows, m.nanos) for m in preview.moves] == [
        (Owner(), Owner(teams["payments"].pk), 4, 2 * ONE + BIG)
    ]
    assert (preview.total_rows, preview.total_nanos) == (TOTAL_ROWS, TOTAL_NANOS)
    with jobs_run_inline():
        rule, run = services.rule_save(finops, None, data, expected_fingerprint=preview.fingerprint)

    run.refresh_from_db()
    assert run.status == AttributionRunStatus.DONE
    assert (run.rows_moved, run.nanos_moved) == (preview.rows_moved, preview.nanos_moved) == (4, 3_100_000)
    assert run.moves == [
        {
            "from": {"team": None, "person": None, "task": None, "team_id": None, "person_id": None, "task_id": None},
            "to": {"team": "Payments", "person": None, "task": None, "team_id": teams["payments"].pk,
                   "person_id": None, "task_id": None},
            "rows": 4,
            "nanos": 3_100_000,
        }
    ]  # fmt: skip
    assert {
        (o["dimension"], o["label"]): (o["before_nanos"], o["after_nanos"]) for o in run.owner_totals
    } == {
        ("team", "Payments"): (500_000, 3_600_000),
        ("team", None): (4_600_000, 1_500_000),
    }
    assert (run.total_rows, run.total_nanos, run.days_refreshed) == (TOTAL_ROWS, TOTAL_NANOS, 2)
    assert owner_of("k4") == (teams["payments"].pk, None, None)
    assert rule.pk == Rule.objects.get().pk


def test_totals_per_team_and_person_conserve_the_grand_total_through_every_run(
    acme, teams, people, usage, finops, jobs_run_inline
):
    review = Task.objects.create(organisation=acme, key="reviews", name="Reviews")
    changes = [
        lambda: services.rule_save(finops, None, RuleInput(field="api_key_alias", pattern="bot$", team_id=teams["emea"].pk)),
        lambda: services.identity_save(finops, None, IdentityInput(kind="gateway_team", value="team-pay", team_id=teams["payments"].pk)),
        lambda: services.rule_save(finops, None, RuleInput(field="user", pattern="^dave@", person_id=people["carol"].pk, task_id=review.pk)),
        lambda: services.identity_save(finops, None, IdentityInput(kind="user", value="alice@acme.example", team_id=teams["sales"].pk)),
    ]  # fmt: skip
    before_team = fact_totals("team_id")
    for change in changes:
        with jobs_run_inline():
            _, run = change()
        run.refresh_from_db()
        assert run.status == AttributionRunStatus.DONE, run.error
        for by in ("team_id", "person_id", "task_id"):
            totals = fact_totals(by)
            assert sum(rows for rows, _ in totals.values()) == TOTAL_ROWS
            assert sum(nanos for _, nanos in totals.values()) == TOTAL_NANOS
            # The rollups of the days touched were refreshed: they agree with the facts, owner by owner.
            assert rollup_totals(by) == totals
        # The run's before/after of each owner whose total changed: what left one arrived at another.
        assert (
            sum(o["after_nanos"] - o["before_nanos"] for o in run.owner_totals if o["dimension"] == "team")
            == 0
        )
        assert (
            sum(o["after_rows"] - o["before_rows"] for o in run.owner_totals if o["dimension"] == "person")
            == 0
        )

    assert before_team == {
        teams["platform"].pk: (3, 1_500_000),
        teams["payments"].pk: (1, 500_000),
        None: (7, 4_600_000),
    }
    assert fact_totals("team_id") == {
        teams["sales"].pk: (3, 1_500_000),  # alice's user identity names a team: it wins over her own
        teams["payments"].pk: (3, 1_500_000),  # bob + team-pay
        teams["emea"].pk: (5, 3_600_000),  # billing-bot (4 rows) + dave as carol, whose team is EMEA
    }
    assert fact_totals("task_id") == {review.pk: (1, 500_000), None: (10, 6_100_000)}
    assert owner_of("d1") == (teams["emea"].pk, people["carol"].pk, review.pk)


def test_a_second_run_with_nothing_changed_moves_nothing_and_refreshes_no_day(
    acme, teams, usage, finops, jobs_run_inline, django_assert_max_num_queries
):
    with jobs_run_inline():
        services.rule_save(
            finops, None, RuleInput(field="gateway_team", pattern="pay", team_id=teams["payments"].pk)
        )
    again = services.attribution_run_request(organisation_id=acme.pk, reason="again")
    # Set-wise: a fixed number of statements whatever the number of facts (no per-fact work).
    with django_assert_max_num_queries(12):
        services.attribution_run_execute(run_id=again.pk)
    again.refresh_from_db()
    assert (again.rows_moved, again.nanos_moved, again.days_refreshed, again.moves) == (0, 0, 0, [])
    assert (again.total_rows, again.total_nanos) == (TOTAL_ROWS, TOTAL_NANOS)
    # Running a finished run again (a re-delivered message) changes nothing either.
    assert services.attribution_run_execute(run_id=again.pk).finished_at == again.finished_at


def test_deleting_a_rule_moves_its_rows_back_by_the_previewed_amount(
    acme, teams, usage, finops, jobs_run_inline
):
    with jobs_run_inline():
        rule, _ = services.rule_save(
            finops, None, RuleInput(field="api_key", pattern="^sk-", team_id=teams["emea"].pk)
        )
    preview = services.rule_preview(finops, rule, None)
    assert [(m.source, m.target, m.rows, m.nanos) for m in preview.moves] == [
        (Owner(teams["emea"].pk), Owner(), 4, 3_100_000)
    ]
    with jobs_run_inline():
        run = services.rule_delete(finops, rule, expected_fingerprint=preview.fingerprint)
    run.refresh_from_db()
    assert (run.rows_moved, run.nanos_moved) == (4, 3_100_000)
    assert fact_totals("team_id")[None] == (7, 4_600_000)


def test_a_stale_preview_is_refused_and_nothing_is_saved(acme, teams, usage, finops):
    data = RuleInput(field="api_key_alias", pattern="bot", team_id=teams["payments"].pk)
    preview = services.rule_preview(finops, None, data)
    services.identity_save(
        finops, None, IdentityInput(kind="api_key", value="sk-hash-1", team_id=teams["emea"].pk)
    )
    with pytest.raises(services.StalePreview):
        services.rule_save(finops, None, data, expected_fingerprint=preview.fingerprint)
    assert not Rule.objects.exists()


def test_a_source_limited_rule_moves_only_that_sources_rows(
    acme, teams, people, usage, ingest, tmp_path, finops, jobs_run_inline
):
    # The same raw identity (team-pay) arrives from a second source.
    other = ingest(
        "litellm_spend_logs",
        write_jsonl(tmp_path / "other.jsonl", [record("o1", team_id="team-pay")]),
        source="gateway-eu",
    )
    data = RuleInput(
        field="gateway_team", pattern="pay", team_id=teams["payments"].pk, source_id=other.source_id
    )
    preview = services.rule_preview(finops, None, data)
    assert [(m.rows, m.nanos) for m in preview.moves] == [(1, ONE)]
    with jobs_run_inline():
        _, run = services.rule_save(finops, None, data)
    run.refresh_from_db()
    assert (run.rows_moved, run.nanos_moved) == (1, ONE)
    assert owner_of("o1") == (teams["payments"].pk, None, None)
    assert owner_of("g1") == (None, None, None)


def test_applying_a_plan_the_facts_no_longer_match_is_refused(acme, teams, usage):
    book = RuleBook.load(
        acme.pk,
        rules=[Rule(organisation=acme, field="gateway_team", pattern="pay", team_id=teams["emea"].pk)],
    )
    plan = plan_reattribution(acme.pk, book)
    assert (plan.rows_moved, plan.nanos_moved) == (2, 2 * ONE)
    days = apply_plan(acme.pk, plan)
    assert days == [dt.date(2026, 8, 3)]
    # Applying the same plan again would move 0 rows where it planned 2: refused, nothing kept.
    with pytest.raises(PlanDrift):
        apply_plan(acme.pk, plan)


def test_a_failed_run_is_recorded_as_failed(acme, usage, monkeypatch):
    from apps.org import tasks

    run = services.attribution_run_request(organisation_id=acme.pk, reason="test")

    def broken(organisation_id, book):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "plan_reattribution", broken)
    with pytest.raises(RuntimeError):
        tasks.reattribute.apply(args=[run.pk], throw=True)
    run.refresh_from_db()
    assert (run.status, run.error) == (AttributionRunStatus.FAILED, "RuntimeError: disk full")
    assert AttributionRun.objects.count() == 1


def test_facts_move_in_one_update_statement_not_one_per_fact(acme, teams, usage):
    Rule.objects.create(organisation=acme, field="api_key_alias", pattern="bot", team=teams["emea"])
    Rule.objects.create(organisation=acme, field="gateway_team", pattern="pay", team=teams["sales"])
    queued = services.attribution_run_request(organisation_id=acme.pk, reason="two rules")
    with CaptureQueriesContext(connection) as queries:
        services.attribution_run_execute(run_id=queued.pk)
    queued.refresh_from_db()
    assert (queued.rows_moved, queued.nanos_moved) == (6, 3_100_000 + 2 * ONE)
    assert count_sql("UPDATE usage_usagefact", queries.captured_queries) == 1
    # The raw identities' new owners are staged once each, in one executemany.
    assert count_sql("INSERT INTO org_reattribution_stage", queries.captured_queries) == 1
