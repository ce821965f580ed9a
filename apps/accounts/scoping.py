"""The one place that decides what a viewer may see. Selectors take a Viewer and filter through here.

Fail closed: no viewer, no rows. CIO and FinOps see their organisation; a manager the teams they
manage and every team below them; a member only their own usage.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.http import Http404

from apps.accounts.models import ORGANISATION_WIDE_ROLES, Membership, Role
from apps.org.models import Organisation, Team


class ScopeMissing(Exception):
    """A scoped query was attempted without a viewer."""


@dataclass(frozen=True, slots=True)
class Viewer:
    organisation_id: int
    role: str
    team_ids: frozenset[int] | None  # None: the whole organisation
    person_id: int | None

    @property
    def sees_organisation(self) -> bool:
        return self.team_ids is None and self.role in ORGANISATION_WIDE_ROLES

    def can_see_team(self, team_id: int) -> bool:
        return self.team_ids is None or team_id in self.team_ids

    def can_see_person(self, person_id: int, person_team_id: int | None) -> bool:
        if self.sees_organisation:
            return True
        if self.role == Role.MEMBER:
            return person_id == self.person_id
        return person_team_id is not None and person_team_id in (self.team_ids or ())


def subtree_team_ids(organisation_id: int, roots: set[int]) -> frozenset[int]:
    """The given teams and every team below them (one query for the organisation's tree)."""
    children: dict[int | None, list[int]] = {}
    for team_id, parent_id in Team.objects.filter(organisation_id=organisation_id).values_list(
        "id", "parent_id"
    ):
        children.setdefault(parent_id, []).append(team_id)
    found: set[int] = set()
    stack = [team_id for team_id in roots]
    while stack:
        team_id = stack.pop()
        if team_id in found:
            continue
        found.add(team_id)
        stack.extend(children.get(team_id, ()))
    return frozenset(found)


def viewer_for_user(user) -> Viewer:
    """The viewer for a logged-in user; 404 for anyone without a membership."""
    if not user.is_authenticated:
        raise Http404("no such page")
    try:
        membership = Membership.objects.get(user=user)
    except Membership.DoesNotExist:
        raise Http404("no such page") from None
    if membership.role in ORGANISATION_WIDE_ROLES:
        return Viewer(membership.organisation_id, membership.role, None, membership.person_id)
    if membership.role == Role.MANAGER:
        roots = set(membership.managed_teams.values_list("id", flat=True))
        teams = subtree_team_ids(membership.organisation_id, roots)
        return Viewer(membership.organisation_id, membership.role, teams, membership.person_id)
    return Viewer(membership.organisation_id, Role.MEMBER, frozenset(), membership.person_id)


def organisation_viewer(organisation: Organisation) -> Viewer:
    """For system callers that act for the whole organisation (the CLI, scheduled jobs)."""
    return Viewer(organisation.pk, Role.CIO, None, None)


def scope_usage(queryset: QuerySet, viewer: Viewer | None) -> QuerySet:
    """Filter facts or rollups (anything with organisation/team/person columns) to what the viewer sees."""
    if viewer is None:
        raise ScopeMissing("usage queried without a viewer")
    queryset = queryset.filter(organisation_id=viewer.organisation_id)
    if viewer.sees_organisation:
        return queryset
    if viewer.role == Role.MEMBER:
        return queryset.filter(person_id=viewer.person_id) if viewer.person_id else queryset.none()
    if not viewer.team_ids:
        return queryset.none()
    return queryset.filter(Q(team_id__in=viewer.team_ids))
