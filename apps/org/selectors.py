"""Reads of teams and people, through the viewer: an object out of scope does not exist (404)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet
from django.http import Http404

from apps.accounts.models import Role
from apps.accounts.scoping import Viewer, subtree_team_ids
from apps.org.attribution import Owner
from apps.org.models import AttributionRun, Identity, PeopleImport, Person, RawIdentity, Rule, Task, Team
from apps.org.reattribution import OwnerLabels, Plan


def team_get(viewer: Viewer, *, slug: str) -> Team:
    team = Team.objects.filter(organisation_id=viewer.organisation_id, slug=slug).first()
    if team is None or not viewer.can_see_team(team.pk):
        raise Http404("no such team")
    return team


def person_get(viewer: Viewer, *, person_id: int) -> Person:
    person = (
        Person.objects.filter(organisation_id=viewer.organisation_id, pk=person_id)
        .select_related("team")
        .first()
    )
    if person is None or not viewer.can_see_person(person.pk, person.team_id):
        raise Http404("no such person")
    return person


def team_subtree(team: Team) -> frozenset[int]:
    return subtree_team_ids(team.organisation_id, {team.pk})


# --- attribution: rules, identities, tasks, runs, HR imports ----------------------------------------------


def require_organisation_wide(viewer: Viewer) -> None:
    """CIO and FinOps only; anyone else is told the page does not exist."""
    if not viewer.sees_organisation:
        raise Http404("no such page")


def require_rule_editor(viewer: Viewer) -> None:
    """The rule pages: CIO, FinOps and managers (for their teams)."""
    if not (viewer.sees_organisation or (viewer.role == Role.MANAGER and viewer.team_ids)):
        raise Http404("no such page")


def rules_for(viewer: Viewer) -> QuerySet[Rule]:
    """Every rule for CIO/FinOps; for a manager the rules that target their teams or their people."""
    require_rule_editor(viewer)
    rules = Rule.objects.filter(organisation_id=viewer.organisation_id).select_related(
        "team", "person", "task", "source"
    )
    if viewer.sees_organisation:
        return rules
    scope = viewer.team_ids or frozenset()
    return rules.filter(Q(team_id__in=scope) | Q(team__isnull=True, person__team_id__in=scope))


def rule_get(viewer: Viewer, *, rule_id: int) -> Rule:
    rule = rules_for(viewer).filter(pk=rule_id).first()
    if rule is None:
        raise Http404("no such rule")
    return rule


def identities_for(viewer: Viewer) -> QuerySet[Identity]:
    require_organisation_wide(viewer)
    return (
        Identity.objects.filter(organisation_id=viewer.organisation_id)
        .select_related("team", "person", "task")
        .order_by("kind", "value")
    )


def identity_get(viewer: Viewer, *, identity_id: int) -> Identity:
    identity = identities_for(viewer).filter(pk=identity_id).first()
    if identity is None:
        raise Http404("no such identity")
    return identity


def tasks_for(viewer: Viewer) -> QuerySet[Task]:
    require_organisation_wide(viewer)
    return Task.objects.filter(organisation_id=viewer.organisation_id)


def task_get(viewer: Viewer, *, task_id: int) -> Task:
    task = tasks_for(viewer).filter(pk=task_id).first()
    if task is None:
        raise Http404("no such task")
    return task


@dataclass(frozen=True, slots=True)
class UnnamedTag:
    tag: str
    rows: int
    nanos: int


def unnamed_tags(viewer: Viewer, *, limit: int = 200) -> list[UnnamedTag]:
    """Tags seen on usage that no task answers for (by key or identity), largest spend first.

    One aggregate of the facts by raw identity; the tags are read from the raw identities.
    """
    require_organisation_wide(viewer)
    organisation_id = viewer.organisation_id
    tagged = dict(
        RawIdentity.objects.filter(organisation_id=organisation_id, fields__has_key="tag").values_list(
            "pk", "fields__tag"
        )
    )
    if not tagged:
        return []
    known = set(Task.objects.filter(organisation_id=organisation_id).values_list("key", flat=True))
    known |= set(
        Identity.objects.filter(organisation_id=organisation_id, kind="tag", task__isnull=False).values_list(
            "value", flat=True
        )
    )
    totals: dict[str, list[int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT raw_identity_id, COUNT(*), COALESCE(SUM(cost_nanos), 0) FROM usage_usagefact "
            "WHERE organisation_id = %s AND raw_identity_id IS NOT NULL GROUP BY raw_identity_id",
            [organisation_id],
        )
        for raw_id, rows, nanos in cursor.fetchall():
            tag = tagged.get(raw_id)
            if tag is None or tag in known:
                continue
            total = totals.setdefault(tag, [0, 0])
            total[0] += rows
            total[1] += nanos
    found = [UnnamedTag(tag, rows, nanos) for tag, (rows, nanos) in totals.items()]
    return sorted(found, key=lambda item: (-item.nanos, -item.rows, item.tag))[:limit]


def attribution_runs_for(viewer: Viewer) -> QuerySet[AttributionRun]:
    require_organisation_wide(viewer)
    return AttributionRun.objects.filter(organisation_id=viewer.organisation_id)


def attribution_run_get(viewer: Viewer, *, run_id: int) -> AttributionRun:
    run = attribution_runs_for(viewer).filter(pk=run_id).first()
    if run is None:
        raise Http404("no such run")
    return run


def people_imports_for(viewer: Viewer) -> QuerySet[PeopleImport]:
    require_organisation_wide(viewer)
    return PeopleImport.objects.filter(organisation_id=viewer.organisation_id).defer("content")


def people_import_get(viewer: Viewer, *, import_id: int) -> PeopleImport:
    require_organisation_wide(viewer)
    upload = (
        PeopleImport.objects.filter(organisation_id=viewer.organisation_id, pk=import_id)
        .select_related("organisation")
        .first()
    )
    if upload is None:
        raise Http404("no such import")
    return upload


@dataclass(frozen=True, slots=True)
class MoveLine:
    source: dict
    target: dict
    rows: int
    nanos: int


def describe_plan(viewer: Viewer, plan: Plan) -> list[MoveLine]:
    """The plan's moves with names; for a manager, owners outside their teams stay unnamed."""
    owners = [move.source for move in plan.moves] + [move.target for move in plan.moves]
    labels = OwnerLabels.for_ids(viewer.organisation_id, owners)

    def name(owner: Owner) -> dict:
        described = labels.describe(owner)
        if (
            not viewer.sees_organisation
            and owner.team_id is not None
            and not viewer.can_see_team(owner.team_id)
        ):
            return {"team": "a team you do not manage", "person": None, "task": None, "hidden": True}
        return described

    return [MoveLine(name(move.source), name(move.target), move.rows, move.nanos) for move in plan.moves]
