"""The audit trail: one row per change, with actor, object, before, after and UTC time (TESTPLAN J1);
append-only in the application, the admin and the database (J2)."""

import datetime as dt

import pytest
from django.contrib import admin
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory

from apps.accounts.models import Role
from apps.accounts.scoping import organisation_viewer
from apps.accounts.services import membership_create
from apps.audit.models import AuditEntry, AuditEntryIsAppendOnly
from apps.audit.services import audit_record
from apps.org import services
from apps.org.models import Team
from apps.org.people_import import apply_import
from apps.org.services import Editor, IdentityInput, RuleInput


@pytest.fixture
def editor(acme, django_user_model):
    user = django_user_model.objects.create_user(username="finops@acme.example", email="finops@acme.example")
    request = RequestFactory().post("/attribution/", HTTP_X_REQUEST_ID="req-42", REMOTE_ADDR="10.1.2.3")
    return Editor(viewer=organisation_viewer(acme), user=user, request=request)


def trail():
    return list(AuditEntry.objects.order_by("pk").values_list("action", "object_type", "actor_label"))


def test_each_rule_change_writes_one_row_with_before_and_after(acme, teams, editor):
    rule, _ = services.rule_save(
        editor, None, RuleInput(field="user", pattern="^a", team_id=teams["emea"].pk)
    )
    services.rule_save(editor, rule, RuleInput(field="user", pattern="^b", team_id=teams["emea"].pk, order=5))
    rule_id = rule.pk
    services.rule_delete(editor, rule)

    assert trail() == [
        ("rule.created", "org.rule", "finops@acme.example"),
        ("rule.updated", "org.rule", "finops@acme.example"),
        ("rule.deleted", "org.rule", "finops@acme.example"),
    ]
    created, updated, deleted = AuditEntry.objects.order_by("pk")
    assert created.before is None and created.after["pattern"] == "^a"
    assert (updated.before["pattern"], updated.after["pattern"], updated.after["order"]) == ("^a", "^b", 5)
    assert deleted.after is None and deleted.object_id == str(rule_id)
    assert {(e.request_id, e.ip_address, e.organisation_id) for e in (created, updated, deleted)} == {
        ("req-42", "10.1.2.3", acme.pk)
    }
    assert created.created_at.utcoffset() == dt.timedelta(0)


def test_identity_and_task_changes_are_audited(acme, teams, editor):
    identity, _ = services.identity_save(
        editor, None, IdentityInput(kind="project", value="p1", team_id=teams["emea"].pk)
    )
    services.identity_delete(editor, identity)
    task = services.task_create(editor, name="Triage", tag="ticket triage")
    services.task_rename(editor, task, name="Ticket triage")
    services.task_rename(editor, task, name="Ticket triage")  # no change, no row
    assert [action for action, _, _ in trail()] == [
        "identity.created",
        "identity.deleted",
        "task.created",
        "identity.created",  # the tag's spelling differs from the key: it maps through an identity
        "task.updated",
    ]


def test_an_hr_import_audits_every_person_team_and_login_it_changes(acme, teams, people, django_user_model):
    from apps.accounts.models import Membership

    erin = django_user_model.objects.create_user(username="erin@acme.example", email="erin@acme.example")
    Membership.objects.create(user=erin, organisation=acme, role=Role.MEMBER)
    content = (
        "email,name,team,manager_email\n"
        "alice@acme.example,Alice,Engineering/Platform,erin@acme.example\n"
        "bob@acme.example,Bob,Engineering/Payments,\n"
        "erin@acme.example,Erin,Engineering/ML,\n"
    )
    apply_import(acme, content, "hr.csv", full_list=True, actor="import_people command")
    assert sorted(action for action, _, _ in trail()) == [
        "membership.updated",  # erin: member -> manager of Platform
        "person.created",  # erin
        "person.deactivated",  # carol
        "person.updated",  # alice's manager
        "team.created",  # ML
    ]
    assert {label for _, _, label in trail()} == {"import_people command"}
    deactivated = AuditEntry.objects.get(action="person.deactivated")
    assert (deactivated.before["is_active"], deactivated.after["is_active"]) == (True, False)
    login = AuditEntry.objects.get(action="membership.updated")
    assert (login.before, login.after) == (
        {"role": "member", "managed_teams": []},
        {"role": "manager", "managed_teams": ["Engineering/Platform"]},
    )
    apply_import(acme, content, "hr.csv", full_list=True, actor="import_people command")
    assert AuditEntry.objects.count() == 5  # nothing changed the second time


def test_a_role_change_writes_one_row_and_an_unchanged_login_none(acme, teams):
    membership_create(organisation=acme, email="lead@acme.example", password="pw-123456789", role=Role.MEMBER)
    membership_create(organisation=acme, email="lead@acme.example", password="pw-other-123", role=Role.MEMBER)
    membership_create(
        organisation=acme, email="lead@acme.example", password="pw-123456789", role=Role.MANAGER,
        managed_teams=[teams["sales"]], actor="load_demo",
    )  # fmt: skip
    assert trail() == [
        ("membership.created", "accounts.membership", "system"),
        ("membership.updated", "accounts.membership", "load_demo"),
    ]
    changed = AuditEntry.objects.get(action="membership.updated")
    assert (changed.before["role"], changed.after["role"]) == ("member", "manager")
    assert changed.after["managed_teams"] == [teams["sales"].pk]


@pytest.fixture
def entry(acme):
    team = Team.objects.create(organisation=acme, name="X", slug="x")
    return audit_record(
        organisation=acme, actor=None, action="team.created", target=team, after={"name": "X"}
    )


def test_the_application_refuses_to_change_or_delete_an_entry(entry):
    entry.action = "team.deleted"
    with pytest.raises(AuditEntryIsAppendOnly):
        entry.save()
    with pytest.raises(AuditEntryIsAppendOnly):
        entry.delete()
    with pytest.raises(AuditEntryIsAppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(action="team.deleted")
    with pytest.raises(AuditEntryIsAppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    # bulk_update's own atomic block has no savepoint: give it one, so the test's transaction survives.
    with pytest.raises(AuditEntryIsAppendOnly), transaction.atomic():
        AuditEntry.objects.bulk_update([entry], ["action"])
    assert AuditEntry.objects.get().action == "team.created"


def test_the_database_refuses_an_update_even_in_raw_sql(entry):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE audit_auditentry SET action = 'forged' WHERE id = %s", [entry.pk])
    assert AuditEntry.objects.get().action == "team.created"


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite: deletes are refused by the application"
)
def test_postgresql_refuses_a_delete_in_raw_sql(entry):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [entry.pk])
    assert AuditEntry.objects.count() == 1


def test_the_admin_is_read_only(entry, rf):
    model_admin = admin.site._registry[AuditEntry]
    request = rf.get("/admin/")
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, entry)
    assert not model_admin.has_delete_permission(request, entry)
    assert model_admin.get_actions(request) == {}


def test_audit_record_needs_an_object(acme):
    with pytest.raises(ValueError, match="target or an object_type"):
        audit_record(organisation=acme, actor=None, action="x.y")
    row = audit_record(
        organisation=acme.pk,
        actor="budgets",
        action="limit.updated",
        object_type="budgets.limit",
        object_id=7,
    )
    assert (row.object_type, row.object_id, row.actor_label, row.request_id) == (
        "budgets.limit",
        "7",
        "budgets",
        "",
    )


def test_the_audit_page_is_for_cio_and_finops(as_persona, entry):
    for persona in ("eng_manager", "alice"):
        assert as_persona(persona).get("/audit/").status_code == 404
    client = as_persona("cio")
    response = client.get("/audit/")
    assert response.status_code == 200
    assert [e.pk for e in response.context["page"].object_list] == [entry.pk]
    assert list(client.get("/audit/?type=org.rule").context["page"].object_list) == []


def test_another_organisations_trail_is_not_shown(as_persona, entry):
    response = as_persona("outsider").get("/audit/")
    assert list(response.context["page"].object_list) == []
