"""Who a usage row belongs to: raw identity fields -> (team, person, task) through identity rows.

Resolution is per distinct combination of raw fields (a RawIdentity), so it runs once per combination
and can be redone for all facts of that combination when identities change. Unmatched rows stay
unattributed; they are never dropped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from apps.org.models import Identity, IdentityKind, Organisation, Person, RawIdentity, Task

# Raw field -> identity kind, in the order their answers win (a person's own key before a shared team).
FIELD_KINDS: tuple[tuple[str, str], ...] = (
    ("user", IdentityKind.USER),
    ("api_key", IdentityKind.API_KEY),
    ("api_key_alias", IdentityKind.API_KEY),
    ("gateway_team", IdentityKind.GATEWAY_TEAM),
    ("gateway_team_alias", IdentityKind.GATEWAY_TEAM),
    ("project", IdentityKind.PROJECT),
    ("tag", IdentityKind.TAG),
)


@dataclass(frozen=True, slots=True)
class Attribution:
    raw_identity_id: int | None
    team_id: int | None
    person_id: int | None
    task_id: int | None


def identity_digest(fields: dict[str, str]) -> str:
    return hashlib.blake2b(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


class Resolver:
    """Resolves raw identity fields for one organisation; loads its identity table once."""

    def __init__(self, organisation: Organisation) -> None:
        self.organisation = organisation
        self._identities = {
            (identity.kind, identity.value): identity
            for identity in Identity.objects.filter(organisation=organisation)
        }
        people = list(Person.objects.filter(organisation=organisation))
        self._people_by_email = {person.email.lower(): person for person in people}
        self._team_by_person = {person.pk: person.team_id for person in people}
        self._tasks_by_key = {task.key: task for task in Task.objects.filter(organisation=organisation)}
        self._cache: dict[str, Attribution] = {}

    def resolve(self, fields: dict[str, str]) -> Attribution:
        if not fields:
            return Attribution(None, None, None, None)
        digest = identity_digest(fields)
        cached = self._cache.get(digest)
        if cached is None:
            cached = self._cache[digest] = self._resolve_new(digest, fields)
        return cached

    def _resolve_new(self, digest: str, fields: dict[str, str]) -> Attribution:
        raw, _ = RawIdentity.objects.get_or_create(
            organisation=self.organisation, digest=digest, defaults={"fields": fields}
        )
        team_id = person_id = task_id = None
        for field, kind in FIELD_KINDS:
            value = fields.get(field)
            identity = self._identities.get((kind, value)) if value else None
            if identity is None:
                continue
            person_id = person_id or identity.person_id
            team_id = team_id or identity.team_id
            task_id = task_id or identity.task_id
        user = fields.get("user", "").lower()
        if person_id is None and user in self._people_by_email:
            # A gateway user that is an employee's email needs no identity row.
            person_id = self._people_by_email[user].pk
        if team_id is None and person_id is not None:
            team_id = self._team_by_person.get(person_id)
        if task_id is None and fields.get("tag") in self._tasks_by_key:
            task_id = self._tasks_by_key[fields["tag"]].pk
        return Attribution(raw.pk, team_id, person_id, task_id)
