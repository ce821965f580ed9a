"""Writes for attribution: rules, identities, tasks, HR imports, and the re-attribution job.

Every change is made by an Editor (a viewer's rights plus who they are), writes one audit row in the
same transaction, raises the organisation's attribution_version (so a running ingestion reloads what it
attributes with), and queues an AttributionRun that moves the stored facts (apps.org.reattribution).

Rights: CIO and FinOps change anything. A manager changes only rules that target the teams they manage
(or people in them), and only if the change moves rows between those teams and "unattributed": a rule
that would take rows from another team is refused. Everything else answers 404 to them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.http import Http404, HttpRequest
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.scoping import Viewer
from apps.audit.services import audit_record
from apps.org import people_import
from apps.org.attribution import RuleBook, compile_pattern
from apps.org.models import (
    AttributionRun,
    AttributionRunStatus,
    Identity,
    Organisation,
    PeopleImport,
    Person,
    Rule,
    Task,
    Team,
)
from apps.org.reattribution import OwnerLabels, Plan, apply_plan, plan_reattribution
from apps.usage.services import refresh_rollups

security_log = logging.getLogger("spendwatch.security")
MOVES_KEPT = 500  # per run; the rest are summed into one "other moves" entry


class AttributionChangeRefused(Exception):
    """The change is not the editor's to make (for a manager: it reaches beyond their teams)."""


class StalePreview(Exception):
    """What saving would move is no longer what the preview showed."""


@dataclass(frozen=True, slots=True)
class Editor:
    """Who makes a change: their rights, their login (None for commands) and, for pages, the request."""

    viewer: Viewer
    user: Any = None
    label: str = ""
    request: HttpRequest | None = None

    @property
    def actor(self) -> Any:
        return self.user if self.user is not None else (self.label or "system")

    @property
    def actor_label(self) -> str:
        if self.user is not None:
            return getattr(self.user, "email", "") or self.user.get_username()
        return self.label or "system"


def _require_organisation_wide(editor: Editor) -> None:
    if not editor.viewer.sees_organisation:
        raise Http404("no such page")


def _audit(editor: Editor, action: str, target, before: dict | None, after: dict | None) -> None:
    audit_record(
        organisation=editor.viewer.organisation_id,
        actor=editor.actor,
        action=action,
        target=target,
        before=before,
        after=after,
        request=editor.request,
    )


def _attribution_changed(editor: Editor, reason: str) -> AttributionRun:
    """Bump the version and queue a re-attribution run (sent once the change is committed)."""
    Organisation.objects.filter(pk=editor.viewer.organisation_id).update(
        attribution_version=F("attribution_version") + 1
    )
    return attribution_run_request(
        organisation_id=editor.viewer.organisation_id,
        requested_by=editor.user,
        label=editor.actor_label,
        reason=reason,
    )


# --- rules ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleInput:
    field: str
    pattern: str
    order: int = 100
    source_id: int | None = None
    team_id: int | None = None
    person_id: int | None = None
    task_id: int | None = None
    note: str = ""
    is_active: bool = True


def rule_snapshot(rule: Rule) -> dict:
    return {
        "order": rule.order,
        "source": rule.source_id,
        "field": rule.field,
        "pattern": rule.pattern,
        "team": rule.team_id,
        "person": rule.person_id,
        "task": rule.task_id,
        "note": rule.note,
        "is_active": rule.is_active,
    }


def _check_target(editor: Editor, *, team_id, person_id, task_id, source_id=None) -> None:
    """Every object named belongs to the organisation; a manager names only their teams and people."""
    viewer = editor.viewer
    organisation_id = viewer.organisation_id
    if team_id is not None and not Team.objects.filter(organisation_id=organisation_id, pk=team_id).exists():
        raise Http404("no such team")
    person_team = None
    if person_id is not None:
        person = (
            Person.objects.filter(organisation_id=organisation_id, pk=person_id).values("team_id").first()
        )
        if person is None:
            raise Http404("no such person")
        person_team = person["team_id"]
    if task_id is not None and not Task.objects.filter(organisation_id=organisation_id, pk=task_id).exists():
        raise Http404("no such task")
    if source_id is not None:
        from apps.ingestion.models import DataSource  # the one place attribution looks at sources

        if not DataSource.objects.filter(organisation_id=organisation_id, pk=source_id).exists():
            raise Http404("no such source")
    if viewer.sees_organisation:
        return
    if team_id is None and person_id is None:
        raise AttributionChangeRefused("a manager's rule must name one of their teams or people")
    if team_id is not None and not viewer.can_see_team(team_id):
        raise Http404("no such team")
    if person_id is not None and not viewer.can_see_person(person_id, person_team):
        raise Http404("no such person")


def preview_refusal(editor: Editor, plan: Plan) -> str:
    """Why the editor may not make the change previewed by `plan` ("" when they may).

    A manager's change may move rows only between their own teams and "unattributed".
    """
    viewer = editor.viewer
    if viewer.sees_organisation:
        return ""
    scope = viewer.team_ids or frozenset()
    outside = [
        move
        for move in plan.moves
        if (move.source.team_id is None and move.target.team_id is None)
        or any(team is not None and team not in scope for team in (move.source.team_id, move.target.team_id))
    ]
    if not outside:
        return ""
    rows = sum(move.rows for move in outside)
    return f"This would move {rows} rows of teams you do not manage; ask FinOps to make this change."


def _check_moves(editor: Editor, plan: Plan) -> None:
    refusal = preview_refusal(editor, plan)
    if refusal:
        security_log.warning(
            "attribution change refused: actor=%s organisation=%s reason=moves rows of other teams",
            editor.actor_label,
            editor.viewer.organisation_id,
        )
        raise AttributionChangeRefused(refusal)


def _current_rules(organisation_id: int, *, without: int | None = None) -> list[Rule]:
    rules = Rule.objects.filter(organisation_id=organisation_id, is_active=True)
    return [rule for rule in rules if rule.pk != without]


def rule_build(editor: Editor, rule: Rule | None, data: RuleInput) -> Rule:
    """The rule as it would be saved (not saved); raises ValueError for a bad pattern."""
    if rule is not None and rule.organisation_id != editor.viewer.organisation_id:
        raise Http404("no such rule")
    if data.team_id is None and data.person_id is None and data.task_id is None:
        raise ValueError("a rule needs a team, a person or a task")
    compile_pattern(data.pattern)
    _check_target(
        editor, team_id=data.team_id, person_id=data.person_id, task_id=data.task_id, source_id=data.source_id
    )
    candidate = Rule(pk=rule.pk if rule else None, organisation_id=editor.viewer.organisation_id)
    for name in RuleInput.__slots__:
        setattr(candidate, name, getattr(data, name))
    _validate(candidate)
    return candidate


def rule_preview(editor: Editor, rule: Rule | None, data: RuleInput | None) -> Plan:
    """What saving (data) or deleting (data=None) the rule would move. Nothing is written."""
    organisation_id = editor.viewer.organisation_id
    rules = _current_rules(organisation_id, without=rule.pk if rule else None)
    if data is not None:
        rules.append(rule_build(editor, rule, data))
    return plan_reattribution(organisation_id, RuleBook.load(organisation_id, rules=rules))


def _validate(candidate: Rule | Identity) -> None:
    """Field formats (kind names, lengths) as ValueError; references are checked by _check_target."""
    try:
        candidate.full_clean(
            exclude=["organisation", "person", "team", "task", "source", "created_at"],
            validate_unique=False,
            validate_constraints=False,
        )
    except ValidationError as error:
        raise ValueError(
            "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in error.message_dict.items())
        ) from None


def _lock_organisation(organisation_id: int) -> None:
    # Changes of one organisation's attribution one at a time: each preview check sees the last one.
    Organisation.objects.select_for_update().filter(pk=organisation_id).first()


def rule_save(
    editor: Editor, rule: Rule | None, data: RuleInput, *, expected_fingerprint: str | None = None
) -> tuple[Rule, AttributionRun]:
    """Create (rule=None) or update a rule; queues the re-attribution run that moves the facts."""
    with transaction.atomic():
        _lock_organisation(editor.viewer.organisation_id)
        plan = rule_preview(editor, rule, data)
        _check_moves(editor, plan)
        if expected_fingerprint is not None and plan.fingerprint != expected_fingerprint:
            raise StalePreview("usage or rules changed since the preview")
        before = rule_snapshot(rule) if rule else None
        saved = rule_build(editor, rule, data)
        if rule is not None:
            saved.created_at = rule.created_at
        saved.save()
        _audit(editor, "rule.updated" if rule else "rule.created", saved, before, rule_snapshot(saved))
        run = _attribution_changed(editor, f"rule #{saved.pk} {'changed' if rule else 'created'}")
    return saved, run


def rule_delete(editor: Editor, rule: Rule, *, expected_fingerprint: str | None = None) -> AttributionRun:
    if rule.organisation_id != editor.viewer.organisation_id:
        raise Http404("no such rule")
    with transaction.atomic():
        _lock_organisation(editor.viewer.organisation_id)
        _check_target(editor, team_id=rule.team_id, person_id=rule.person_id, task_id=rule.task_id)
        plan = rule_preview(editor, rule, None)
        _check_moves(editor, plan)
        if expected_fingerprint is not None and plan.fingerprint != expected_fingerprint:
            raise StalePreview("usage or rules changed since the preview")
        before, pk = rule_snapshot(rule), rule.pk
        rule.delete()
        audit_record(
            organisation=editor.viewer.organisation_id, actor=editor.actor, action="rule.deleted",
            object_type="org.rule", object_id=pk, before=before, after=None, request=editor.request,
        )  # fmt: skip
        return _attribution_changed(editor, f"rule #{pk} deleted")


# --- identities -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdentityInput:
    kind: str
    value: str
    team_id: int | None = None
    person_id: int | None = None
    task_id: int | None = None


def identity_snapshot(identity: Identity) -> dict:
    return {
        "kind": identity.kind,
        "value": identity.value,
        "team": identity.team_id,
        "person": identity.person_id,
        "task": identity.task_id,
    }


def identity_build(editor: Editor, identity: Identity | None, data: IdentityInput) -> Identity:
    _require_organisation_wide(editor)
    if identity is not None and identity.organisation_id != editor.viewer.organisation_id:
        raise Http404("no such identity")
    if data.team_id is None and data.person_id is None and data.task_id is None:
        raise ValueError("an identity needs a team, a person or a task")
    _check_target(editor, team_id=data.team_id, person_id=data.person_id, task_id=data.task_id)
    duplicate = Identity.objects.filter(
        organisation_id=editor.viewer.organisation_id, kind=data.kind, value=data.value
    ).exclude(pk=identity.pk if identity else None)
    if duplicate.exists():
        raise ValueError(f"{data.kind} {data.value!r} is already mapped")
    candidate = Identity(pk=identity.pk if identity else None, organisation_id=editor.viewer.organisation_id)
    for name in IdentityInput.__slots__:
        setattr(candidate, name, getattr(data, name))
    _validate(candidate)
    return candidate


def identity_preview(editor: Editor, identity: Identity | None, data: IdentityInput | None) -> Plan:
    _require_organisation_wide(editor)
    organisation_id = editor.viewer.organisation_id
    identities = [
        row
        for row in Identity.objects.filter(organisation_id=organisation_id)
        if identity is None or row.pk != identity.pk
    ]
    if data is not None:
        identities.append(identity_build(editor, identity, data))
    return plan_reattribution(organisation_id, RuleBook.load(organisation_id, identities=identities))


def identity_save(
    editor: Editor, identity: Identity | None, data: IdentityInput, *, expected_fingerprint: str | None = None
) -> tuple[Identity, AttributionRun]:
    with transaction.atomic():
        _lock_organisation(editor.viewer.organisation_id)
        plan = identity_preview(editor, identity, data)
        if expected_fingerprint is not None and plan.fingerprint != expected_fingerprint:
            raise StalePreview("usage or identities changed since the preview")
        before = identity_snapshot(identity) if identity else None
        saved = identity_build(editor, identity, data)
        saved.save()
        action = "identity.updated" if identity else "identity.created"
        _audit(editor, action, saved, before, identity_snapshot(saved))
        run = _attribution_changed(editor, f"identity {saved.kind}:{saved.value} {action.split('.')[1]}")
    return saved, run


def identity_delete(
    editor: Editor, identity: Identity, *, expected_fingerprint: str | None = None
) -> AttributionRun:
    _require_organisation_wide(editor)
    if identity.organisation_id != editor.viewer.organisation_id:
        raise Http404("no such identity")
    with transaction.atomic():
        _lock_organisation(editor.viewer.organisation_id)
        plan = identity_preview(editor, identity, None)
        if expected_fingerprint is not None and plan.fingerprint != expected_fingerprint:
            raise StalePreview("usage or identities changed since the preview")
        before, pk = identity_snapshot(identity), identity.pk
        identity.delete()
        audit_record(
            organisation=editor.viewer.organisation_id, actor=editor.actor, action="identity.deleted",
            object_type="org.identity", object_id=pk, before=before, after=None, request=editor.request,
        )  # fmt: skip
        return _attribution_changed(editor, f"identity {before['kind']}:{before['value']} deleted")


# --- tasks ------------------------------------------------------------------------------------------------


def task_create(editor: Editor, *, name: str, key: str = "", tag: str = "") -> Task:
    """A new use case. From a tag seen on usage (`tag`), the tag maps to it: its rows move to the task."""
    _require_organisation_wide(editor)
    name = name.strip()
    key = slugify(key or tag or name)[:100]
    if not name or not key:
        raise ValueError("a task needs a name")
    organisation_id = editor.viewer.organisation_id
    with transaction.atomic():
        _lock_organisation(organisation_id)
        if Task.objects.filter(organisation_id=organisation_id, key=key).exists():
            raise ValueError(f"a task with the key {key!r} exists already")
        task = Task.objects.create(organisation_id=organisation_id, key=key, name=name)
        _audit(editor, "task.created", task, None, {"key": key, "name": name})
        if tag and tag != key:
            # The resolver matches a tag to a task key as it is; other spellings need an identity row.
            identity = Identity.objects.create(
                organisation_id=organisation_id, kind="tag", value=tag, task=task
            )
            _audit(editor, "identity.created", identity, None, identity_snapshot(identity))
        _attribution_changed(editor, f"task {key} created")
    return task


def task_rename(editor: Editor, task: Task, *, name: str) -> Task:
    _require_organisation_wide(editor)
    if task.organisation_id != editor.viewer.organisation_id:
        raise Http404("no such task")
    name = name.strip()
    if not name:
        raise ValueError("a task needs a name")
    if name == task.name:
        return task
    with transaction.atomic():
        before = {"key": task.key, "name": task.name}
        task.name = name
        task.save(update_fields=["name"])
        _audit(editor, "task.updated", task, before, {"key": task.key, "name": name})
    return task


# --- re-attribution runs -----------------------------------------------------------------------------------


def attribution_run_request(
    *, organisation_id: int, requested_by=None, label: str = "system", reason: str, enqueue: bool = True
) -> AttributionRun:
    """Record a run and queue it once the caller's transaction commits (enqueue=False: the caller runs it)."""
    from apps.org.tasks import reattribute

    run = AttributionRun.objects.create(
        organisation_id=organisation_id,
        requested_by=requested_by if getattr(requested_by, "pk", None) else None,
        requested_by_label=label[:254],
        reason=reason[:300],
    )
    if enqueue:
        # The rollup queue: like a rollup refresh, it rewrites aggregates; ingestion need not wait for it.
        transaction.on_commit(lambda: reattribute.apply_async(args=[run.pk], queue="rollup"))
    return run


def attribution_run_execute(*, run_id: int) -> AttributionRun:
    """Re-resolve every raw identity of the run's organisation and move the facts; idempotent.

    One transaction: the facts, their rollups and the run record change together or not at all. On
    PostgreSQL it reads one snapshot (REPEATABLE READ), so a concurrent ingestion makes it fail with a
    serialisation error (the task retries) rather than move rows it did not count.
    """
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        isolation = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
    else:
        isolation = None
    with transaction.atomic():
        if isolation:
            with connection.cursor() as cursor:
                cursor.execute(isolation)
        run = AttributionRun.objects.select_for_update().get(pk=run_id)
        if run.status == AttributionRunStatus.DONE:
            return run
        organisation_id = run.organisation_id
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7002, organisation_id])
        plan = plan_reattribution(organisation_id, RuleBook.load(organisation_id))
        days = apply_plan(organisation_id, plan)
        if days:
            refresh_rollups(organisation_id=organisation_id, days=days)
        _record(run, plan, days)
    return run


def _record(run: AttributionRun, plan: Plan, days: list) -> None:
    owners = [move.source for move in plan.moves] + [move.target for move in plan.moves]
    labels = OwnerLabels.for_ids(run.organisation_id, owners)
    moves = [
        {"from": labels.describe(move.source), "to": labels.describe(move.target), "rows": move.rows,
         "nanos": move.nanos}
        for move in plan.moves[:MOVES_KEPT]
    ]  # fmt: skip
    rest = plan.moves[MOVES_KEPT:]
    if rest:
        moves.append(
            {"from": None, "to": None, "rows": sum(m.rows for m in rest), "nanos": sum(m.nanos for m in rest)}
        )
    run.moves = moves
    run.owner_totals = [
        {"dimension": dimension, "id": owner_id, "label": labels.label(dimension, owner_id),
         "before_rows": old[0], "after_rows": new[0], "before_nanos": old[1], "after_nanos": new[1]}
        for dimension, owner_id, old, new in plan.changed_owner_totals()
    ]  # fmt: skip
    run.raw_identities = plan.raw_identities
    run.rows_moved = plan.rows_moved
    run.nanos_moved = plan.nanos_moved
    run.total_rows = plan.total_rows
    run.total_nanos = plan.total_nanos
    run.days_refreshed = len(days)
    run.status = AttributionRunStatus.DONE
    run.finished_at = timezone.now()
    run.error = ""
    run.save()


def attribution_run_fail(*, run_id: int, error: str) -> None:
    AttributionRun.objects.filter(pk=run_id).exclude(status=AttributionRunStatus.DONE).update(
        status=AttributionRunStatus.FAILED, error=error[:2000], finished_at=timezone.now()
    )


# --- HR import --------------------------------------------------------------------------------------------


def people_import_upload(editor: Editor, *, file_name: str, data: bytes, full_list: bool) -> PeopleImport:
    """Keep the uploaded file for its preview; raises PeopleFileError when it cannot be read at all."""
    _require_organisation_wide(editor)
    content = people_import.decode(data, file_name)
    organisation = Organisation.objects.get(pk=editor.viewer.organisation_id)
    people_import.plan_import(organisation, content, file_name, full_list=full_list)  # header errors now
    return PeopleImport.objects.create(
        organisation=organisation,
        file_name=file_name[:255],
        content=content,
        full_list=full_list,
        uploaded_by=editor.user if getattr(editor.user, "pk", None) else None,
        uploaded_by_label=editor.actor_label,
    )


def people_import_preview(upload: PeopleImport) -> people_import.ImportPlan:
    return people_import.plan_import(
        upload.organisation, upload.content, upload.file_name, full_list=upload.full_list
    )


def people_import_apply(
    editor: Editor, upload: PeopleImport, *, expected_fingerprint: str | None = None
) -> tuple[people_import.ImportPlan, AttributionRun | None]:
    """Apply a previewed file; queues a re-attribution run when anything changed.

    Raises people_import.StalePreview when the changes differ from the preview's.
    """
    _require_organisation_wide(editor)
    if upload.organisation_id != editor.viewer.organisation_id:
        raise Http404("no such import")
    with transaction.atomic():
        plan = people_import.apply_import(
            upload.organisation,
            upload.content,
            upload.file_name,
            full_list=upload.full_list,
            actor=editor.actor,
            request=editor.request,
            expected_fingerprint=expected_fingerprint,
        )
        run = None
        if plan.has_changes:
            # Who is whose and in which team changed: usage follows the people's current teams.
            run = attribution_run_request(
                organisation_id=upload.organisation_id,
                requested_by=editor.user,
                label=editor.actor_label,
                reason=f"HR import #{upload.pk} ({upload.file_name})",
            )
        upload.applied_at = timezone.now()
        upload.summary = plan.summary()
        upload.attribution_run = run
        upload.save(update_fields=["applied_at", "summary", "attribution_run"])
    return plan, run
