"""Resolution order: exact identities, then rules in order, then email to person, then the person's team.

Each of team, person and task comes from the first step that gives one.
"""

import pytest

from apps.org.attribution import Owner, Resolver, RuleBook
from apps.org.models import Identity, Organisation, RawIdentity, Rule, Task
from apps.usage.models import UsageFact
from tests.conftest import write_jsonl
from tests.org.conftest import record


def book(acme, *, identities=(), rules=()) -> RuleBook:
    return RuleBook.load(acme.pk, identities=list(identities), rules=list(rules))


def identity(acme, kind, value, **targets) -> Identity:
    return Identity(organisation=acme, kind=kind, value=value, **targets)


def rule(acme, order, field, pattern, pk=None, **targets) -> Rule:
    return Rule(pk=pk, organisation=acme, order=order, field=field, pattern=pattern, **targets)


def test_an_exact_identity_wins_over_a_rule(acme, teams):
    resolved = book(
        acme,
        identities=[identity(acme, "gateway_team", "team-pay", team_id=teams["payments"].pk)],
        rules=[rule(acme, 1, "gateway_team", "^team-", team_id=teams["emea"].pk)],
    )
    assert resolved.attribute({"gateway_team": "team-pay"}) == Owner(teams["payments"].pk)
    assert resolved.attribute({"gateway_team": "team-ops"}) == Owner(teams["emea"].pk)


def test_rules_apply_in_order_and_the_first_match_gives_each_dimension(acme, teams, people):
    review = Task.objects.create(organisation=acme, key="review", name="Review")
    resolved = book(
        acme,
        rules=[
            # Saved later but ordered first.
            rule(acme, 20, "project", "^proj-", pk=1, team_id=teams["sales"].pk),
            rule(acme, 10, "project", "-ml$", pk=2, team_id=teams["platform"].pk, task_id=review.pk),
            rule(acme, 10, "project", "ml", pk=3, team_id=teams["emea"].pk, person_id=people["carol"].pk),
        ],
    )
    # Rule 2 (order 10, older) gives team and task; rule 3 only the person it adds; rule 1 nothing.
    assert resolved.attribute({"project": "proj-ml"}) == Owner(
        teams["platform"].pk, people["carol"].pk, review.pk
    )
    assert resolved.attribute({"project": "proj-web"}) == Owner(teams["sales"].pk)
    assert resolved.attribute({"project": "other"}) == Owner()


def test_an_inactive_rule_and_a_rule_of_another_field_do_not_match(acme, teams, people):
    off = rule(acme, 1, "user", ".*", team_id=teams["sales"].pk)
    off.is_active = False
    resolved = book(acme, rules=[off, rule(acme, 2, "tag", "alice", team_id=teams["emea"].pk)])
    assert resolved.attribute({"user": "alice@acme.example"}) == Owner(
        teams["platform"].pk, people["alice"].pk
    )
    assert resolved.attribute({"user": "alice"}) == Owner()


def test_a_rule_team_wins_over_the_persons_own_team_but_not_the_person(acme, teams, people):
    resolved = book(acme, rules=[rule(acme, 1, "api_key", "^shared-", team_id=teams["sales"].pk)])
    # alice is found by her email (step 3), yet the rule (step 2) already gave the team.
    assert resolved.attribute({"user": "alice@acme.example", "api_key": "shared-1"}) == Owner(
        teams["sales"].pk, people["alice"].pk
    )
    # Without a rule, the person's team.
    assert resolved.attribute({"user": "ALICE@acme.example"}) == Owner(
        teams["platform"].pk, people["alice"].pk
    )


def test_email_matching_covers_user_and_email_kinds_and_deactivated_people(acme, teams, people):
    people["carol"].is_active = False
    people["carol"].save()
    resolved = book(acme)
    assert resolved.attribute({"email": "bob@acme.example"}) == Owner(teams["payments"].pk, people["bob"].pk)
    # Deactivated, not deleted: their past usage stays theirs.
    assert resolved.attribute({"user": "carol@acme.example"}) == Owner(teams["emea"].pk, people["carol"].pk)
    # Other kinds are not emails of people.
    assert resolved.attribute({"end_user": "bob@acme.example"}) == Owner()


def test_the_most_specific_identity_field_wins(acme, teams, people):
    resolved = book(
        acme,
        identities=[
            identity(acme, "project", "proj-1", team_id=teams["sales"].pk),
            identity(acme, "api_key", "key-1", team_id=teams["payments"].pk),
            identity(acme, "user", "u-1", person_id=people["carol"].pk),
        ],
    )
    # The user's identity gives the person; the key's identity (before the project's) gives the team,
    # which wins over carol's own team: the person's team is only the last resort.
    assert resolved.attribute({"project": "proj-1", "api_key": "key-1", "user": "u-1"}) == Owner(
        teams["payments"].pk, people["carol"].pk
    )
    assert resolved.attribute({"project": "proj-1", "user": "u-1"}) == Owner(
        teams["sales"].pk, people["carol"].pk
    )
    assert resolved.attribute({"user": "u-1"}) == Owner(teams["emea"].pk, people["carol"].pk)


def test_identities_of_the_general_kind_answer_for_aliases(acme, teams):
    resolved = book(
        acme,
        identities=[
            identity(acme, "api_key", "billing-bot", team_id=teams["payments"].pk),
            identity(acme, "api_key_alias", "ops-bot", team_id=teams["emea"].pk),
        ],
    )
    assert resolved.attribute({"api_key_alias": "billing-bot"}) == Owner(teams["payments"].pk)
    assert resolved.attribute({"api_key_alias": "ops-bot"}) == Owner(teams["emea"].pk)
    assert resolved.attribute({"api_key": "ops-bot"}) == Owner()  # not the other way round


@pytest.mark.parametrize(
    "fields",
    [
        {"arn": "arn:aws:iam::123456789012:role/support-bot"},
        {"resource_group": "rg-support-prod"},
        {"workspace": "wrkspc_support"},
        {"deployment": "support-gpt4o"},
        {"cost_center": "support"},  # a tag key of a cloud source, passed through as its own kind
    ],
)
def test_every_raw_kind_can_be_mapped_by_a_rule(acme, teams, fields):
    (field,) = fields
    resolved = book(acme, rules=[rule(acme, 1, field, "support", team_id=teams["emea"].pk)])
    assert resolved.attribute(fields) == Owner(teams["emea"].pk)


def test_a_tag_equal_to_a_task_key_gives_the_task_unless_something_earlier_did(acme, teams):
    triage = Task.objects.create(organisation=acme, key="triage", name="Triage")
    other = Task.objects.create(organisation=acme, key="other", name="Other")
    resolved = book(acme, rules=[rule(acme, 1, "project", "^p", task_id=other.pk)])
    assert resolved.attribute({"tag": "triage"}) == Owner(task_id=triage.pk)
    assert resolved.attribute({"tag": "triage", "project": "p1"}) == Owner(task_id=other.pk)


def test_a_source_limited_rule_needs_its_source(acme, teams):
    limited = rule(acme, 1, "user", ".", team_id=teams["sales"].pk)
    limited.source_id = 42
    resolved = book(acme, rules=[limited])
    assert resolved.attribute({"user": "x"}, source_id=42) == Owner(teams["sales"].pk)
    assert resolved.attribute({"user": "x"}, source_id=7) == Owner()
    assert resolved.attribute({"user": "x"}) == Owner()


def test_ingestion_applies_rules_and_stores_each_raw_identity_once(acme, teams, people, ingest, tmp_path):
    Rule.objects.create(
        organisation=acme, order=1, field="gateway_team", pattern="^team-p", team=teams["payments"]
    )
    records = [record(f"g{i}", team_id="team-pay") for i in range(3)] + [record("x", team_id="team-x")]
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "logs.jsonl", records))
    owners = dict(UsageFact.objects.values_list("record_key", "team_id"))
    assert owners == {
        "g0": teams["payments"].pk,
        "g1": teams["payments"].pk,
        "g2": teams["payments"].pk,
        "x": None,
    }
    assert RawIdentity.objects.filter(organisation=acme).count() == 2


def test_a_resolver_reloads_when_attribution_changes_under_it(acme, teams):
    resolver = Resolver(acme)
    assert resolver.resolve({"project": "p-1"}).team_id is None
    Identity.objects.create(organisation=acme, kind="project", value="p-1", team=teams["sales"])
    Organisation.objects.filter(pk=acme.pk).update(attribution_version=acme.attribution_version + 1)
    resolver.prepare([{"project": "p-2"}])  # the next batch of a running ingestion
    assert resolver.resolve({"project": "p-1"}).team_id == teams["sales"].pk


def test_a_bad_pattern_is_refused_with_the_reason(acme, teams):
    with pytest.raises(ValueError, match="not a regular expression"):
        book(acme, rules=[rule(acme, 1, "user", "(unclosed", team_id=teams["sales"].pk)])
