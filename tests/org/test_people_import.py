"""People and teams from HR: preview, idempotent apply, deactivation, managers, bad rows, the command."""

import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from apps.accounts.models import Membership, Role
from apps.accounts.scoping import viewer_for_user
from apps.org import services
from apps.org.models import AttributionRun, Person, Team
from apps.org.people_import import PeopleFileError, StalePreview, apply_import, plan_import

HEADER = "email,name,team,manager_email,cost_centre,annual_loaded_cost\n"
# carol is missing (deactivated in a full list); erin and frank are new; ML is a new team under Engineering.
V1 = HEADER + (
    "alice@acme.example,Alice,Engineering/Platform,erin@acme.example,CC-10,182000\n"
    "bob@acme.example,Bob,Engineering/Payments,erin@acme.example,CC-11,\n"
    "Erin@Acme.example,Erin,Engineering,,CC-01,250000.50\n"
    "frank@acme.example,Frank,engineering/ML,erin@acme.example,CC-12,\n"
)


@pytest.fixture
def erin_login(acme):
    user = get_user_model().objects.create_user(username="erin@acme.example", email="erin@acme.example")
    return Membership.objects.create(user=user, organisation=acme, role=Role.MEMBER)


def apply(acme, content, *, full_list=True):
    return apply_import(acme, content, "hr.csv", full_list=full_list, actor="tests")


def test_the_preview_counts_what_applying_changes_and_writes_nothing(acme, teams, people, erin_login):
    plan = plan_import(acme, V1, "hr.csv", full_list=True)

    assert plan.summary() == {
        "rows": 4,
        "errors": 0,
        "new_teams": 1,
        "new_people": 2,
        "changed_people": 2,
        "reactivated": 0,
        "deactivated": 1,
        "manager_changes": 2,
        "membership_changes": 1,
        "unchanged": 0,
    }
    assert plan.new_teams == [("Engineering", "ML")]  # existing parent matched without case
    assert plan.new_people == ["erin@acme.example", "frank@acme.example"]
    assert plan.deactivated == ["carol@acme.example"]
    alice = next(change for change in plan.changed_people if change.email == "alice@acme.example")
    assert [(c.field, c.before, c.after) for c in alice.changes] == [
        ("manager", "", "erin@acme.example"),
        ("cost_centre", "", "CC-10"),
        ("annual_loaded_cost", "", "182000.00"),
    ]
    (login,) = plan.membership_changes
    assert (login.login, login.role_before, login.role_after) == ("erin@acme.example", "member", "manager")
    assert login.teams_after == ["Engineering/ML", "Engineering/Payments", "Engineering/Platform"]
    assert Person.objects.count() == 3 and Team.objects.count() == 5


def test_applying_twice_changes_nothing_the_second_time(acme, teams, people, erin_login):
    apply(acme, V1)
    state = sorted(Person.objects.values_list("email", "name", "team__name", "manager__email", "cost_centre",
                                              "annual_loaded_cost", "is_active"))  # fmt: skip
    assert state == [
        ("alice@acme.example", "Alice", "Platform", "erin@acme.example", "CC-10", Decimal("182000.00"), True),
        ("bob@acme.example", "Bob", "Payments", "erin@acme.example", "CC-11", None, True),
        ("carol@acme.example", "Carol", "EMEA", None, "", None, False),
        ("erin@acme.example", "Erin", "Engineering", None, "CC-01", Decimal("250000.50"), True),
        ("frank@acme.example", "Frank", "ML", "erin@acme.example", "CC-12", None, True),
    ]
    assert Team.objects.get(name="ML").parent == teams["engineering"]

    again = plan_import(acme, V1, "hr.csv", full_list=True)
    assert not again.has_changes
    assert again.summary()["unchanged"] == 4
    apply(acme, V1)
    assert Team.objects.count() == 6 and Person.objects.count() == 5


def test_people_missing_from_a_full_list_are_deactivated_and_come_back_when_listed(acme, teams, people):
    only_alice = HEADER + "alice@acme.example,Alice,Engineering/Platform,,,\n"
    assert plan_import(acme, only_alice, "hr.csv", full_list=False).deactivated == []
    apply(acme, only_alice)
    assert set(Person.objects.filter(is_active=False).values_list("email", flat=True)) == {
        "bob@acme.example",
        "carol@acme.example",
    }
    assert Person.objects.count() == 3  # deactivated, never deleted

    back = plan_import(
        acme, only_alice + "bob@acme.example,Bob,Engineering/Payments,,,\n", "hr.csv", full_list=True
    )
    assert back.reactivated == ["bob@acme.example"]
    assert back.summary()["changed_people"] == 1


def test_managers_follow_their_reports(acme, teams, people, erin_login):
    apply(acme, V1)
    erin_login.refresh_from_db()
    assert erin_login.role == Role.MANAGER
    viewer = viewer_for_user(erin_login.user)
    ml = Team.objects.get(name="ML")
    assert viewer.team_ids == {teams["platform"].pk, teams["payments"].pk, ml.pk}

    # Frank now reports to alice, who has no login; erin keeps alice and bob.
    apply(
        acme,
        V1.replace(
            "frank@acme.example,Frank,engineering/ML,erin@acme.example",
            "frank@acme.example,Frank,engineering/ML,alice@acme.example",
        ),
    )
    assert set(erin_login.managed_teams.values_list("name", flat=True)) == {"Platform", "Payments"}

    # Nobody reports to erin any more: back to member, no teams.
    no_reports = (
        HEADER + "alice@acme.example,Alice,Engineering/Platform,,,\nerin@acme.example,Erin,Engineering,,,\n"
    )
    apply(acme, no_reports, full_list=False)
    apply(acme, HEADER + "bob@acme.example,Bob,Engineering/Payments,,,\n", full_list=False)
    erin_login.refresh_from_db()
    assert (erin_login.role, erin_login.managed_teams.count()) == (Role.MEMBER, 0)


def test_organisation_wide_logins_are_left_as_they_are(acme, teams, people):
    user = get_user_model().objects.create_user(username="erin@acme.example", email="erin@acme.example")
    cio = Membership.objects.create(user=user, organisation=acme, role=Role.CIO)
    plan = plan_import(acme, V1, "hr.csv", full_list=True)
    assert plan.membership_changes == []
    apply(acme, V1)
    cio.refresh_from_db()
    assert (cio.role, cio.managed_teams.count()) == (Role.CIO, 0)


BAD = HEADER + (
    "alice@acme.example,Alice,Engineering/Platform,,,\n"
    "not-an-email,Nobody,Sales,,,\n"
    "bob@acme.example,,Engineering/Payments,,,\n"
    "carol@acme.example,Carol,Sales//EMEA,,,\n"
    "dan@acme.example,Dan,Sales,ghost@acme.example,,\n"
    "eve@acme.example,Eve,Sales,,,12k\n"
    "alice@acme.example,Alice Again,Sales,,,\n"
    "gus@acme.example,Gus,Sales,gus@acme.example,,\n"
)


def test_bad_rows_are_named_by_line_and_field_and_the_good_rows_kept(acme, teams, people):
    plan = plan_import(acme, BAD, "hr.csv", full_list=True)
    assert [str(error) for error in plan.errors] == [
        "hr.csv line 3, email: 'not-an-email' is not an email address",
        "hr.csv line 4, name: is empty",
        "hr.csv line 5, team: 'Sales//EMEA' has an empty part (write Engineering/Platform)",
        "hr.csv line 6, manager_email: ghost@acme.example is not a person of this file",
        "hr.csv line 7, annual_loaded_cost: '12k' is not an amount (digits, optional . and cents)",
        "hr.csv line 8, email: alice@acme.example appears again (first on line 2)",
        "hr.csv line 9, manager_email: is the person themself",
    ]
    assert [row.email for row in plan.rows] == ["alice@acme.example"]
    # Line 3's person could be anyone: nobody is deactivated by this file.
    assert plan.deactivated == []
    assert "line(s) 3" in plan.deactivation_withheld
    apply(acme, BAD)
    assert Person.objects.filter(is_active=True).count() == 3


def test_a_person_whose_row_is_bad_is_not_deactivated(acme, teams, people):
    content = (
        HEADER
        + "alice@acme.example,Alice,Engineering/Platform,,,\nbob@acme.example,,Engineering/Payments,,,\n"
    )
    assert plan_import(acme, content, "hr.csv", full_list=True).deactivated == ["carol@acme.example"]


def test_a_manager_dropped_for_a_bad_row_takes_their_reports_rows_with_them(acme, teams, people):
    content = HEADER + (
        "zoe@acme.example,Zoe,Sales,,,-5\n"  # bad amount: zoe is not in the file's good rows
        "yan@acme.example,Yan,Sales,zoe@acme.example,,\n"
    )
    plan = plan_import(acme, content, "hr.csv", full_list=True)
    assert [(e.line, e.field) for e in plan.errors] == [(2, "annual_loaded_cost"), (3, "manager_email")]
    assert plan.rows == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "hr.csv: the file is empty (expected a header line)"),
        ("email,name\nalice@acme.example,Alice\n", "hr.csv line 1: missing column(s) team"),
        ("email,name,team,team_path\n", "hr.csv line 1: column team appears twice"),
    ],
)
def test_a_file_without_the_needed_columns_is_refused_whole(acme, content, message):
    with pytest.raises(PeopleFileError) as error:
        plan_import(acme, content, "hr.csv", full_list=True)
    assert str(error.value) == message


def test_a_stale_preview_is_not_applied(acme, teams, people):
    preview = plan_import(acme, V1, "hr.csv", full_list=True)
    Person.objects.create(organisation=acme, email="zed@acme.example", name="Zed")
    with pytest.raises(StalePreview):
        apply_import(
            acme, V1, "hr.csv", full_list=True, actor="tests", expected_fingerprint=preview.fingerprint
        )
    assert not Person.objects.filter(email="frank@acme.example").exists()


def test_applying_through_the_service_queues_a_re_attribution(acme, teams, people, finops):
    upload = services.people_import_upload(finops, file_name="hr.csv", data=V1.encode(), full_list=True)
    plan, run = services.people_import_apply(
        finops, upload, expected_fingerprint=services.people_import_preview(upload).fingerprint
    )
    upload.refresh_from_db()
    assert upload.applied_at is not None and upload.summary["new_people"] == 2
    assert run.reason == f"HR import #{upload.pk} (hr.csv)"
    # Applied again: nothing changed, no run.
    second = services.people_import_upload(finops, file_name="hr.csv", data=V1.encode(), full_list=True)
    assert services.people_import_apply(finops, second)[1] is None
    assert AttributionRun.objects.count() == 1


def test_the_command_previews_by_default_and_applies_with_apply(acme, teams, people, tmp_path, capsys, usage):
    path = tmp_path / "hr.csv"
    path.write_text(V1.replace("Alice,Engineering/Platform", "Alice,Sales"))
    call_command("import_people", str(path))
    out = capsys.readouterr().out.splitlines()
    assert "new person: frank@acme.example" in out
    assert json.loads(out[-1])["applied"] is False
    assert not Person.objects.filter(email="frank@acme.example").exists()

    call_command("import_people", str(path), "--apply")
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (summary["applied"], summary["new_people"], summary["deactivated"]) == (True, 2, 1)
    # alice moved to Sales: her three requests (1,500,000 nano-dollars) moved with her, in this process.
    assert summary["rows_moved"] == 3
    run = AttributionRun.objects.get(pk=summary["attribution_run"])
    assert (run.status, run.nanos_moved) == ("done", 1_500_000)


def test_the_command_exits_2_on_an_unreadable_file(acme, tmp_path, capsys):
    path = tmp_path / "hr.csv"
    path.write_bytes(b"email,name,team\n\xff\xfe\n")
    with pytest.raises(SystemExit) as exit_:
        call_command("import_people", str(path))
    assert exit_.value.code == 2
    assert "hr.csv: not UTF-8 text" in capsys.readouterr().err
