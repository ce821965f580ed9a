"""The demo organisation: Northwind Trading, loaded from real source files through the real pipeline.

Expectations are computed from the files the demo wrote (read here with plain JSON), never from the
pipeline's own counters, so a pipeline that drops or double-counts rows fails these tests.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from allauth.account.models import EmailAddress
from django.db.models import Sum

from apps.accounts.models import Membership, Role
from apps.accounts.services import membership_create
from apps.ingestion import demo
from apps.ingestion.models import IngestionRun
from apps.org.models import Identity, Organisation, Person, Task, Team
from apps.usage.models import UsageFact

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 11, 20)
LONDON = ZoneInfo("Europe/London")  # Northwind's days are London days
SCALE = 0.01  # about 1,350 gateway requests: the same shapes as the full demo, in a few seconds


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The demo sets five passwords per load; the production hasher would dominate these tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class Written:
    """What the demo files contain, read independently of the adapters."""

    litellm: list[dict]
    openai_results: list[dict]

    @property
    def requests(self) -> int:
        return len(self.litellm) + sum(result["num_model_requests"] for result in self.openai_results)


def read_files(files: demo.DemoFiles) -> Written:
    with files.litellm.open("rb") as handle:
        litellm = [orjson.loads(line) for line in handle if line.strip()]
    results = [
        result
        for page in files.openai_pages
        for bucket in orjson.loads(page.read_bytes())["data"]
        for result in bucket["results"]
    ]
    return Written(litellm, results)


def fact_requests(organisation: Organisation) -> int:
    return UsageFact.objects.filter(organisation=organisation).aggregate(total=Sum("requests"))["total"]


def test_it_builds_northwind_with_its_team_tree_people_and_tasks(tmp_path: Path):
    result = demo.load_demo(TODAY, scale=SCALE, directory=tmp_path)

    northwind = result.organisation
    assert (northwind.name, northwind.slug, northwind.time_zone) == (
        "Northwind Trading",
        "northwind",
        "Europe/London",
    )
    assert Team.objects.filter(organisation=northwind).count() == 16
    assert Team.objects.filter(organisation=northwind, parent=None).count() == 8
    engineering = Team.objects.get(organisation=northwind, slug="engineering")
    assert set(engineering.children.values_list("name", flat=True)) == {
        "Platform",
        "Payments",
        "Mobile",
        "Data Science",
    }
    people = Person.objects.filter(organisation=northwind)
    assert people.count() == 320
    for person in people:
        first, last = person.name.lower().split(" ", 1)
        assert person.email == f"{first}.{re.sub('[^a-z]', '', last)}@northwind.example"
    assert Task.objects.filter(organisation=northwind).count() == 15
    assert Identity.objects.filter(organisation=northwind, kind="gateway_team").count() == 16


def test_every_request_written_is_in_the_fact_table(tmp_path: Path):
    result = demo.load_demo(TODAY, scale=SCALE, directory=tmp_path)
    written = read_files(result.files)

    assert [path.name for path in result.files.paths] == [
        "litellm_spend_logs.jsonl",
        "openai_usage_page1.json",
        "openai_usage_page2.json",
        "openai_usage_page3.json",
    ]
    assert len(written.litellm) == result.files.litellm_lines > 1_000
    facts = UsageFact.objects.filter(organisation=result.organisation)
    assert facts.count() == len(written.litellm) + len(written.openai_results)
    assert fact_requests(result.organisation) == written.requests
    assert [run.rejected for run in result.runs] == [0, 0]
    first_day = TODAY - dt.timedelta(days=89)
    assert {bucket_day for bucket_day in facts.filter(grain=3).values_list("day", flat=True)} == {
        first_day + dt.timedelta(days=offset) for offset in range(90)
    }


def test_some_spend_is_unattributed_and_the_unknown_model_is_unpriced(tmp_path: Path):
    result = demo.load_demo(TODAY, scale=SCALE, directory=tmp_path)
    written = read_files(result.files)
    facts = UsageFact.objects.filter(organisation=result.organisation)

    unknown_team, _ = demo.UNKNOWN_GATEWAY_TEAM
    orphan_lines = [line for line in written.litellm if line["team_id"] == unknown_team]
    sandbox_results = [
        result for result in written.openai_results if result["project_id"] == "proj_Sbx3Hj7Lcqe"
    ]
    assert orphan_lines and sandbox_results
    assert facts.filter(team=None).count() == len(orphan_lines) + len(sandbox_results)
    total = facts.aggregate(cost=Sum("cost_nanos"))["cost"]
    unattributed = facts.filter(team=None).aggregate(cost=Sum("cost_nanos"))["cost"]
    assert 0.01 * total < unattributed < 0.08 * total

    # A failed request is stored at cost 0, so only the successful calls to the unknown model are unpriced.
    unknown_model_calls = [
        line
        for line in written.litellm
        if line["model"] == demo.UNPRICED_MODEL and line["status"] == "success"
    ]
    assert unknown_model_calls
    assert facts.filter(cost_nanos=None).count() == len(unknown_model_calls)
    assert (
        facts.filter(failed=True).count() == sum(line["status"] == "failure" for line in written.litellm) > 0
    )


def test_a_second_load_on_the_same_day_adds_nothing(tmp_path: Path):
    first = demo.load_demo(TODAY, scale=SCALE, directory=tmp_path)
    counts = _row_counts(first.organisation)

    second = demo.load_demo(TODAY, scale=SCALE, directory=tmp_path)

    assert second.organisation == first.organisation
    assert [(run.accepted, run.replaced, run.duplicates) for run in second.runs] == [
        (0, 0, run.rows) for run in first.runs
    ]
    assert _row_counts(first.organisation) == counts
    assert IngestionRun.objects.count() == 4


def test_a_load_on_the_next_day_adds_only_that_day(tmp_path: Path):
    demo.load_demo(TODAY, scale=SCALE, directory=tmp_path / "today")
    before = UsageFact.objects.count()

    tomorrow = TODAY + dt.timedelta(days=1)
    result = demo.load_demo(tomorrow, scale=SCALE, directory=tmp_path / "tomorrow")
    written = read_files(result.files)

    new_lines = [
        line
        for line in written.litellm
        if dt.datetime.fromisoformat(line["startTime"]).astimezone(LONDON).date() == tomorrow
    ]
    new_results = _results_on(result.files, tomorrow)
    assert new_lines and new_results
    assert [run.accepted for run in result.runs] == [len(new_lines), new_results]
    assert [run.replaced for run in result.runs] == [0, 0]
    assert UsageFact.objects.count() == before + len(new_lines) + new_results


def _results_on(files: demo.DemoFiles, day: dt.date) -> int:
    start = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp())
    return sum(
        len(bucket["results"])
        for page in files.openai_pages
        for bucket in orjson.loads(page.read_bytes())["data"]
        if bucket["start_time"] == start
    )


def test_the_demo_logins_exist_with_their_roles(tmp_path: Path):
    result = demo.load_demo(TODAY, scale=SCALE, directory=tmp_path)

    assert [(login.email, login.role, login.password) for login in result.logins] == [
        ("cio@northwind.example", "cio", "demo-password-1"),
        ("finops@northwind.example", "finops", "demo-password-1"),
        ("priya.natarajan@northwind.example", "manager", "demo-password-1"),
        ("tom.okafor@northwind.example", "manager", "demo-password-1"),
        ("dana.kowalski@northwind.example", "member", "demo-password-1"),
    ]
    for login in result.logins:
        membership = Membership.objects.select_related("user").get(user__username=login.email)
        assert membership.organisation == result.organisation
        assert membership.role == login.role
        assert membership.user.email == login.email
        assert membership.user.check_password("demo-password-1")
        assert EmailAddress.objects.filter(user=membership.user, email=login.email, verified=True).exists()

    def managed(email: str) -> list[str]:
        return list(Membership.objects.get(user__username=email).managed_teams.values_list("slug", flat=True))

    assert managed("priya.natarajan@northwind.example") == ["engineering"]
    assert managed("tom.okafor@northwind.example") == ["support-tier-1"]
    member = Membership.objects.get(user__username="dana.kowalski@northwind.example")
    assert member.person.email == "dana.kowalski@northwind.example"
    assert member.person.team.slug == "platform"
    assert UsageFact.objects.filter(person=member.person).exists()


def test_the_files_depend_only_on_the_seed_the_day_and_the_scale(tmp_path: Path):
    plan = demo.demo_plan()
    first = demo.write_demo_files(plan, TODAY, tmp_path / "a", scale=SCALE)
    again = demo.write_demo_files(demo.demo_plan(), TODAY, tmp_path / "b", scale=SCALE)

    assert [path.read_bytes() for path in first.paths] == [path.read_bytes() for path in again.paths]


def test_membership_create_updates_an_existing_login(tmp_path: Path):
    northwind = Organisation.objects.create(name="Northwind Trading", slug="northwind")
    platform = Team.objects.create(organisation=northwind, name="Platform", slug="platform")
    membership_create(
        organisation=northwind, email="Lead@Northwind.example", password="first-pass-1", role="member"
    )

    membership = membership_create(
        organisation=northwind,
        email="lead@northwind.example",
        password="second-pass-2",
        role=Role.MANAGER,
        managed_teams=[platform],
    )

    assert Membership.objects.count() == 1
    assert membership.role == Role.MANAGER
    assert list(membership.managed_teams.all()) == [platform]
    assert membership.user.username == "lead@northwind.example"
    assert membership.user.check_password("second-pass-2")


def _row_counts(organisation: Organisation) -> dict[str, int]:
    return {
        "teams": Team.objects.filter(organisation=organisation).count(),
        "people": Person.objects.filter(organisation=organisation).count(),
        "tasks": Task.objects.filter(organisation=organisation).count(),
        "identities": Identity.objects.filter(organisation=organisation).count(),
        "memberships": Membership.objects.filter(organisation=organisation).count(),
        "facts": UsageFact.objects.filter(organisation=organisation).count(),
        "requests": fact_requests(organisation),
    }
