"""Every dollar goes to a team, a person and a task through identity rows, or stays visibly unattributed."""

import json

from django.db.models import Sum

from apps.org.models import Identity, IdentityKind, Task
from apps.usage.models import UsageFact
from tests.conftest import FIXTURES, litellm_record, write_jsonl


def test_gateway_team_user_and_tags_attribute_litellm_rows(ingest, acme, teams, people, tmp_path):
    review = Task.objects.create(organisation=acme, key="code-review", name="Code review")
    triage = Task.objects.create(organisation=acme, key="support-triage", name="Support triage")
    Identity.objects.create(
        organisation=acme, kind=IdentityKind.GATEWAY_TEAM, value="team-8f3a2c", team=teams["payments"]
    )
    Identity.objects.create(organisation=acme, kind=IdentityKind.TAG, value="ticket-triage", task=triage)
    Identity.objects.create(
        organisation=acme, kind=IdentityKind.API_KEY, value="svc-hash", team=teams["emea"]
    )
    records = [
        # A person by email: their team follows them; the tag names a task directly by its key.
        litellm_record("r1", user="alice@acme.example", request_tags=["task:code-review"]),
        # A gateway team and a tag mapped through an identity row; no person.
        litellm_record(
            "r2",
            team_id="team-8f3a2c",
            metadata={**litellm_record("x")["metadata"], "spend_logs_metadata": {"task": "ticket-triage"}},
        ),
        # A service key mapped to a team.
        litellm_record("r3", api_key="svc-hash"),
        # Nothing known: kept, unattributed.
        litellm_record("r4", user="someone@else.example", team_id="team-unknown"),
    ]
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "logs.jsonl", records))

    facts = {fact.record_key: fact for fact in UsageFact.objects.all()}
    assert (facts["r1"].person_id, facts["r1"].team_id, facts["r1"].task_id) == (
        people["alice"].pk,
        teams["platform"].pk,
        review.pk,
    )
    assert (facts["r2"].person_id, facts["r2"].team_id, facts["r2"].task_id) == (
        None,
        teams["payments"].pk,
        triage.pk,
    )
    assert (facts["r3"].person_id, facts["r3"].team_id, facts["r3"].task_id) == (None, teams["emea"].pk, None)
    assert (facts["r4"].person_id, facts["r4"].team_id, facts["r4"].task_id) == (None, None, None)
    assert facts["r4"].raw_identity.fields == {"user": "someone@else.example", "gateway_team": "team-unknown"}
    assert UsageFact.objects.aggregate(cost=Sum("cost_nanos"))["cost"] == 4 * 500_000


def test_openai_projects_users_and_keys_attribute_buckets(ingest, acme, teams, people):
    Identity.objects.create(
        organisation=acme, kind=IdentityKind.PROJECT, value="proj_Plat7xQ2mRt", team=teams["platform"]
    )
    Identity.objects.create(
        organisation=acme, kind=IdentityKind.USER, value="user-bOk3Ns9xYz", person=people["carol"]
    )
    pages = sorted((FIXTURES / "openai_admin_usage").glob("completions_usage_normal_page*.json"))
    ingest("openai_usage", *pages)

    by_team = dict(UsageFact.objects.values_list("team__slug").annotate(cost=Sum("cost_nanos")))
    # Independently: sum the sample's rows per project/user with the checker's prices.
    results = [r for p in pages for b in json.loads(p.read_text())["data"] for r in b["results"]]
    assert (
        sum(1 for r in results if r["project_id"] == "proj_Plat7xQ2mRt")
        == UsageFact.objects.filter(team=teams["platform"])
        .exclude(raw_identity__fields__user="user-bOk3Ns9xYz")
        .count()
    )
    carol_rows = sum(1 for r in results if r["user_id"] == "user-bOk3Ns9xYz")
    assert UsageFact.objects.filter(person=people["carol"], team=teams["emea"]).count() == carol_rows > 0
    assert set(by_team) <= {"platform", "emea", None}
    assert sum(by_team.values()) == 51_072_706_800
