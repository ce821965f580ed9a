"""Reads of teams and people, through the viewer: an object out of scope does not exist (404)."""

from __future__ import annotations

from django.http import Http404

from apps.accounts.scoping import Viewer, subtree_team_ids
from apps.org.models import Person, Team


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
